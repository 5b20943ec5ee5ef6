"""A session's kept output: ``.amux/logs/<id>.log`` (0600), capped, with one rotation.

The pane's output reaches the log through tmux's ``pipe-pane`` (see
:mod:`amux_tmux.logpipe`), which ends in :func:`write`: a loop that needs only the
standard library, so the process that lives beside every agent stays small. This module
also reads logs back for ``logs`` and ``logs -f``, with terminal escapes removed unless
raw bytes are asked for.

Run as a file (``python -I -S logfile.py --write PATH MAX_BYTES``) it is that loop.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

#: A log rotates to ``<id>.log.1`` past this size; the older rotation is dropped.
MAX_LOG_BYTES = 8 * 1024 * 1024
_CHUNK = 65536

# ESC [ ... final, ESC ] ... BEL/ST, ESC P/X/^/_ ... ST, two-byte ESC sequences, and C1 CSI.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x1b[ -/]*[0-~]"
    r"|\x9b[0-?]*[ -/]*[@-~]"
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def plain(text: str) -> str:
    """Return terminal output as the lines a person would read.

    Escape sequences go; a carriage return starts the line over (progress bars keep
    their last state); other control characters go.

    >>> plain("\\x1b[1mbold\\x1b[0m\\n50%\\r100%\\r\\n")
    'bold\\n100%\\n'
    """
    text = _ESCAPES.sub("", text)
    out = []
    for line in text.split("\n"):
        line = line.removesuffix("\r")
        if "\r" in line:
            line = next((part for part in reversed(line.split("\r")) if part), "")
        out.append(_CONTROLS.sub("", line))
    return "\n".join(out)


def read(path: Path, lines: int | None = None, raw: bool = False) -> str | None:
    """Return the log's text (its last ``lines`` lines), or ``None`` if there is no log."""
    parts = []
    for candidate in (path.with_name(path.name + ".1"), path):
        try:
            parts.append(_read_file(candidate))
        except FileNotFoundError:
            continue
    if not parts:
        return None
    data = b"".join(parts)
    text = data.decode("utf-8", "replace")
    if not raw:
        text = plain(text)
    rows = text.split("\n")
    if rows and rows[-1] == "":
        rows.pop()
    if not raw:
        while rows and not rows[-1].strip():
            rows.pop()
    if lines is not None:
        rows = rows[-lines:] if lines > 0 else []
    return "".join(row + "\n" for row in rows)


def _read_file(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, _CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def follow(
    path: Path,
    emit: Callable[[str], None],
    *,
    lines: int | None,
    raw: bool,
    ended: Callable[[], bool],
    interval: float = 0.2,
) -> None:
    """Emit the log's last ``lines`` lines, then what is added, until ``ended()``.

    A rotation (the file replaced by a new one) is followed; ``ended`` is asked about
    once a second at most, when nothing new came.
    """
    start = read(path, lines, raw) or ""
    for row in start.splitlines():
        emit(row)
    position, inode = _size_and_inode(path)
    pending = ""
    last_check = 0.0
    while True:
        now_size, now_inode = _size_and_inode(path)
        if now_inode != inode:
            position, inode = 0, now_inode  # rotated: the new file starts empty
        if now_size > position:
            with open(path, "rb") as f:
                f.seek(position)
                data = f.read(now_size - position)
            position += len(data)
            text = pending + data.decode("utf-8", "replace")
            *done, pending = text.split("\n")
            for row in done:
                emit(row if raw else plain(row))
            continue
        if time.monotonic() - last_check >= 1.0:
            last_check = time.monotonic()
            if ended():
                if pending:
                    emit(pending if raw else plain(pending))
                return
        time.sleep(interval)


def _size_and_inode(path: Path) -> tuple[int, int | None]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return 0, None
    return st.st_size, st.st_ino


def write(path: str, max_bytes: int, source: int = 0) -> int:
    """Append everything read from ``source`` to ``path``, rotating past ``max_bytes``."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)
    size = os.fstat(fd).st_size
    try:
        while chunk := os.read(source, _CHUNK):
            if size + len(chunk) > max_bytes and size > 0:
                os.close(fd)
                os.replace(path, path + ".1")
                fd = os.open(path, flags, 0o600)
                size = 0
            view = memoryview(chunk)
            while view:
                written = os.write(fd, view)
                view = view[written:]
                size += written
    finally:
        os.close(fd)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--write":
        sys.exit(write(sys.argv[2], int(sys.argv[3])))
    print("usage: logfile.py --write PATH MAX_BYTES", file=sys.stderr)
    sys.exit(2)
