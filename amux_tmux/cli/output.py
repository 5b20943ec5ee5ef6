"""How records and results look on a terminal and in JSON."""

from __future__ import annotations

import datetime as dt
import json
import shlex
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from amux_tmux.manager import Observed
from amux_tmux.model import Session, parse_time


def print_json(data: Any, stream: TextIO | None = None) -> None:
    """Print ``data`` as JSON (one document, newline-terminated).

    One list item or one mapping key per line, each value compact: ``indent`` makes
    ``json`` fall back from its C encoder to Python, which tripled the time of
    ``ls --json`` on 1,000 records.
    """
    out = stream or sys.stdout
    out.write(_json_lines(data, "") + "\n")


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


def table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    """Return rows as left-aligned columns; the last column is not padded."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in (headers, *rows):
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
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
            lines.extend(f"  {k}={v}" for k, v in value.items())
        elif key == "command":
            lines.append(f"command: {shlex.join(value)}")
        else:
            lines.append(f"{key}: {'-' if value is None else value}")
    return "\n".join(lines) + "\n"
