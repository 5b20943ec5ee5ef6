"""A session's kept output: ``.amux/logs/<id>.log`` (0600), capped, with one rotation.

The pane's output reaches the log through tmux's ``pipe-pane`` (see
:mod:`amux_tmux.logpipe`), which ends in :func:`write`: a loop that needs only the
standard library, so the process that lives beside every agent stays small. This module
also reads logs back for ``logs`` and ``logs -f``, replayed on a virtual terminal
(:mod:`amux_tmux.screen`) unless raw bytes are asked for.

Run as a file (``python -I -S logfile.py --write PATH MAX_BYTES``) it is that loop.
"""

from __future__ import annotations

import codecs
import os
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


def log_path(root: Path, session_id: str) -> Path:
    """Return where the output of session ``session_id`` of the store at ``root`` goes."""
    return root / ".amux" / "logs" / f"{session_id}.log"


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
    """Return the rows of ``data`` (its last ``lines``), as shown unless ``raw``."""
    text = data.decode("utf-8", "replace")
    if raw:
        rows = text.split("\n")
        if rows and rows[-1] == "":
            rows.pop()
    else:
        from amux_tmux.screen import render

        rows = render(text)
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
    """Emit the log's last ``lines`` rows, then what is added, until ``ended()``.

    Rows are emitted once they are final (see :meth:`Screen.final_rows`; with ``raw``,
    once their line ends), the rest when the session ends. A rotation is followed: what
    the old file got before it was renamed is read to its end through the still-open
    descriptor, then the new file from its start. ``ended`` is asked about once a second
    at most, when nothing new came.
    """
    rows = _RawRows() if raw else _ShownRows()
    fd = _try_open(path)
    try:
        rows.feed(_try_read(_rotated(path)) + (_read_to_end(fd) if fd is not None else b""))
        shown = rows.final()
        if lines is not None:
            shown = shown[-lines:] if lines > 0 else []
        for row in shown:
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
                rows.feed(fresh)
                for row in rows.final():
                    emit(row)
                if quiet_since is not None:
                    quiet_since = time.monotonic()
                continue
            now = time.monotonic()
            if quiet_since is not None:
                if now - quiet_since >= DRAIN_SECONDS:
                    for row in rows.rest():
                        emit(row)
                    return
            elif now - last_check >= 1.0:
                last_check = now
                if ended():
                    quiet_since = now
            time.sleep(interval)
    finally:
        if fd is not None:
            os.close(fd)


class _ShownRows:
    """Log bytes in, rows as a person saw them out."""

    def __init__(self) -> None:
        from amux_tmux.screen import Screen

        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._screen = Screen()

    def feed(self, data: bytes) -> None:
        self._screen.feed(self._decoder.decode(data))

    def final(self) -> list[str]:
        return self._screen.final_rows()

    def rest(self) -> list[str]:
        self._screen.feed(self._decoder.decode(b"", final=True))
        return self._screen.rest()


class _RawRows:
    """Log bytes in, whole lines out, escapes and all."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> None:
        self._pending += data

    def final(self) -> list[str]:
        done, newline, self._pending = self._pending.rpartition(b"\n")
        return done.decode("utf-8", "replace").split("\n") if newline else []

    def rest(self) -> list[str]:
        rest, self._pending = self._pending, b""
        return [rest.decode("utf-8", "replace")] if rest else []


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
