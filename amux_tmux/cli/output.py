"""How records and results look on a terminal and in JSON."""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from amux_tmux.model import Session, parse_time
from amux_tmux.secrets import Redactor

if TYPE_CHECKING:
    from amux_tmux.manager import Observed

#: Scrubs every message the CLI prints; commands add the secret values they were given.
REDACT = Redactor()

_UNPRINTABLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def printable(text: str) -> str:
    r"""Return ``text`` with every control character shown as an escape, for tables.

    A label holding a newline or a terminal escape must not fake a row or recolour one.

    >>> printable("ok\nFAKE\x1b[31m")
    'ok\\nFAKE\\x1b[31m'
    """
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def print_json(data: Any, stream: TextIO | None = None) -> None:
    """Print ``data`` as JSON (one document, newline-terminated).

    One list item or one mapping key per line, each value compact: ``indent`` makes
    ``json`` fall back from its C encoder to Python, which tripled the time of
    ``ls --json`` on 1,000 records.
    """
    out = stream or sys.stdout
    out.write(_json_lines(data, "") + "\n")


def stream_json_list(items: Iterable[Any], stream: TextIO | None = None) -> None:
    """Print a JSON array item by item, never holding all of it as one string."""
    out = stream or sys.stdout
    first = True
    for item in items:
        out.write(("[\n  " if first else ",\n  ") + json.dumps(item, default=str))
        first = False
    out.write("[]\n" if first else "\n]\n")


def _json_lines(data: Any, pad: str) -> str:
    inner = pad + "  "
    if isinstance(data, list) and data:
        items = f",\n{inner}".join(json.dumps(item, default=str) for item in data)
        return f"[\n{inner}{items}\n{pad}]"
    if isinstance(data, dict) and data:
        pairs = f",\n{inner}".join(
            f"{json.dumps(str(key))}: {_json_lines(value, inner)}" for key, value in data.items()
        )
        return f"{{\n{inner}{pairs}\n{pad}}}"
    return json.dumps(data, default=str)


def record_json(observed: Observed) -> dict[str, Any]:
    """Return a record as JSON-ready data, with its live state when tmux was asked."""
    data = observed.session.to_dict()
    if observed.looked:
        data["state"] = observed.state
        if observed.unreachable:
            data["unreachable"] = observed.unreachable
        if observed.activity is not None:
            data["activity"] = observed.activity.value
            data["activity_at"] = (
                None
                if observed.activity_at is None
                else dt.datetime.fromtimestamp(observed.activity_at, dt.UTC).strftime(
                    "%Y-%m-%dT%H:%M:%S.%fZ"
                )
            )
    return data


def age(session: Session, now: dt.datetime | None = None) -> str:
    """Return a compact age such as ``5s``, ``3m``, ``2h`` or ``4d``."""
    seconds = int(
        ((now or dt.datetime.now(dt.UTC)) - parse_time(session.created_at)).total_seconds()
    )
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def width(text: str) -> int:
    """Return how many terminal columns ``text`` takes (wide East Asian characters two,
    combining marks none).

    >>> width("ab"), width("日本"), width("e\u0301")
    (2, 4, 1)
    """
    if text.isascii():
        return len(text)
    import unicodedata

    return sum(
        0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        for ch in text
    )


def table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    """Return rows as left-aligned columns; the last column is not padded.

    Columns are measured in terminal columns, so a wide label does not push the
    rest of its row out of line.
    """
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], width(cell))
    lines = []
    for row in (headers, *rows):
        cells = [cell + " " * (widths[i] - width(cell)) for i, cell in enumerate(row[:-1])]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines) + "\n"


def command_text(session: Session, width: int = 60) -> str:
    """Return a record's command as one shortened line."""
    text = shlex.join(session.command)
    return text if len(text) <= width else text[: width - 3] + "..."


def show_text(observed: Observed) -> str:
    """Return a record as ``key: value`` lines for people."""
    data = record_json(observed)
    lines = []
    for key, value in data.items():
        if key == "environment":
            lines.append("environment:" if value else "environment: {}")
            lines.extend(f"  {printable(k)}={printable(str(v))}" for k, v in value.items())
        elif key == "command":
            lines.append(f"command: {printable(shlex.join(value))}")
        elif key == "runs":
            lines.append(f"runs: {len(value)}" if value else "runs: -")
            lines.extend(
                f"  {r['started_at'] or '-'} .. {r['stopped_at'] or '-'} {r['status']}"
                + ("" if r["exit_code"] is None else f" (exit {r['exit_code']})")
                for r in value
            )
        else:
            lines.append(f"{key}: {'-' if value is None else printable(str(value))}")
    return "\n".join(lines) + "\n"


def one_line(message: str) -> str:
    r"""Collapse whitespace (and so newlines) into single spaces; show other control
    characters as escapes, so an argument or a file name cannot drive the terminal.

    >>> one_line("no\n such\x1b[2J  ref")
    'no such\\x1b[2J ref'
    """
    return printable(" ".join(message.split()))


def warn(message: str) -> None:
    """Print one warning line on stderr (redacted)."""
    print(f"amux-tmux: warning: {one_line(REDACT(message))}", file=sys.stderr)


def for_each(refs: Sequence[str], act: Callable[[str], None]) -> int:
    """Run ``act`` on every ref; report each failure as one line and go on.

    Returns 0, or the exit code of the first failure.
    """
    from amux_tmux import exc

    code = 0
    for ref in refs:
        try:
            act(ref)
        except exc.AmuxError as err:
            print(f"amux-tmux: error: {one_line(REDACT(str(err)))}", file=sys.stderr)
            code = code or err.exit_code
    return code
