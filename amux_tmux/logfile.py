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
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path

#: A log rotates to ``<id>.log.1`` past this size; the older rotation is dropped.
MAX_LOG_BYTES = 8 * 1024 * 1024
#: After the session ended, ``follow`` reads on until the log stays still this long
#: (tmux's pipe may still be writing the agent's last output).
DRAIN_SECONDS = 0.5
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


def log_path(root: Path, session_id: str) -> Path:
    """Return where the output of session ``session_id`` of the store at ``root`` goes."""
    return root / ".amux" / "logs" / f"{session_id}.log"


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
    for candidate in (_rotated(path), path):
        try:
            parts.append(_read_file(candidate))
        except FileNotFoundError:
            continue
    if not parts:
        return None
    return "".join(row + "\n" for row in _last_rows(b"".join(parts), lines, raw))


def _rotated(path: Path) -> Path:
    return path.with_name(path.name + ".1")


def _last_rows(data: bytes, lines: int | None, raw: bool) -> list[str]:
    """Return the rows of ``data`` (its last ``lines``), plain unless ``raw``."""
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
    return rows


def _read_file(path: Path) -> bytes:
    fd = _open_log(path)
    if fd is None:
        return b""
    try:
        return _read_to_end(fd)
    finally:
        os.close(fd)


def _open_log(path: Path) -> int | None:
    """Open a log for reading: never through a symlink, never blocking; ``None`` if it
    is not a regular file (a FIFO planted there must not hang ``logs``).

    Raises FileNotFoundError if there is nothing there.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def _read_to_end(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, _CHUNK):
        chunks.append(chunk)
    return b"".join(chunks)


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

    Lines are emitted whole, once they end (the last one also when the session ends).
    A rotation is followed: what the old file got before it was renamed is read to its
    end through the still-open descriptor, then the new file from its start. ``ended``
    is asked about once a second at most, when nothing new came.
    """
    fd = _try_open(path)
    try:
        data = _try_read(_rotated(path)) + (_read_to_end(fd) if fd is not None else b"")
        done, _, pending = data.rpartition(b"\n")
        for row in _last_rows(done + b"\n" if done else b"", lines, raw):
            emit(row)
        last_check = 0.0
        quiet_since: float | None = None  # set once ended(): the pipe may still flush
        while True:
            fresh = _read_to_end(fd) if fd is not None else b""
            if _inode(path) != (os.fstat(fd).st_ino if fd is not None else None):
                if fd is not None:
                    fresh += _read_to_end(fd)  # written before the rename
                    os.close(fd)
                fd = _try_open(path)
                fresh += _read_to_end(fd) if fd is not None else b""
            if fresh:
                *complete, pending = (pending + fresh).split(b"\n")
                for line in complete:
                    emit(_row(line, raw))
                if quiet_since is not None:
                    quiet_since = time.monotonic()
                continue
            now = time.monotonic()
            if quiet_since is not None:
                if now - quiet_since >= DRAIN_SECONDS:
                    if pending:
                        emit(_row(pending, raw))
                    return
            elif now - last_check >= 1.0:
                last_check = now
                if ended():
                    quiet_since = now
            time.sleep(interval)
    finally:
        if fd is not None:
            os.close(fd)


def _row(data: bytes, raw: bool) -> str:
    text = data.decode("utf-8", "replace")
    return text if raw else plain(text)


def _try_open(path: Path) -> int | None:
    try:
        return _open_log(path)
    except OSError:
        return None


def _try_read(path: Path) -> bytes:
    try:
        return _read_file(path)
    except OSError:
        return b""


def _inode(path: Path) -> int | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_ino if stat.S_ISREG(st.st_mode) else None


def write(path: str, max_bytes: int, source: int = 0) -> int:
    """Append everything read from ``source`` to ``path``, rotating past ``max_bytes``."""
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)
    size = os.fstat(fd).st_size
    try:
        if size and os.pread(fd, 1, size - 1) != b"\n":
            # A restarted session appends: its first line must not join the last run's.
            size += os.write(fd, b"\n")
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
