"""Durable, atomic replacement of a file's bytes.

The sequence is the one that survives a crash at any instant: a private temp file in
the same directory, written and fsynced, renamed over the target, then the directory
fsynced so the rename itself is on disk. Readers see the old bytes or the new ones,
never a mix, and on any error the old bytes stay and the temp file goes.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from pathlib import Path

TEMP_PREFIX = ".tmp-"
TEMP_MAX_AGE = 3600.0


class NotDurableError(OSError):
    """The new bytes replaced the old ones, but the rename may not survive a crash."""


def write_durable(
    path: Path, data: bytes | Iterable[bytes], mode: int = 0o600, *, sync: bool = True
) -> os.stat_result:
    """Atomically replace ``path`` with ``data`` (bytes, or blocks of them), durably.

    With ``sync=False`` the replacement is atomic but not flushed to disk, for caches
    that a crash may lose (a torn or empty cache must be detectable by its reader).

    Returns
    -------
    os.stat_result
        The ``fstat`` of the new file, so callers can cache it without another call.

    Raises
    ------
    NotDurableError
        ``path`` holds the new bytes, but flushing the directory failed.
    OSError
        Whatever the file system said; ``path`` then still holds its old bytes.
    """
    directory = path.parent
    import tempfile  # not needed by readers; saves ~3 ms of every `list`

    fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".yaml", dir=directory)
    try:
        # mkstemp already uses 0600; fchmod pins it whatever umask says.
        os.fchmod(fd, mode)
        for block in [data] if isinstance(data, bytes) else data:
            view = memoryview(block)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        if sync:
            os.fsync(fd)
        stat = os.fstat(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp_name, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    if not sync:
        return stat
    try:
        fsync_dir(directory)
    except OSError as err:
        raise NotDurableError(err.errno, err.strerror) from err
    return stat


def fsync_dir(directory: Path) -> None:
    """Flush a directory entry change (a rename or an unlink) to disk."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def is_temp_name(name: str) -> bool:
    """Return whether a directory entry is one of our in-flight temp files."""
    return name.startswith(TEMP_PREFIX)


def sweep_temp_files(directory: Path, max_age: float = TEMP_MAX_AGE) -> list[Path]:
    """Remove temp files older than ``max_age`` seconds left by crashed writers.

    Younger ones may belong to a writer that is still running, so they stay.
    """
    removed: list[Path] = []
    cutoff = time.time() - max_age
    with os.scandir(directory) as entries:
        for entry in entries:
            if not is_temp_name(entry.name):
                continue
            with contextlib.suppress(FileNotFoundError):
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed
