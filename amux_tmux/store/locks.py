"""Inter-process locks on files beside the data, never on the data itself.

``os.replace`` swaps the record's inode, so a lock held on the record file would
protect nothing; each record has its own lock file under ``.amux/locks/`` that is
never deleted in normal operation. filelock is imported on first use because
``list`` never locks and should not pay for the import.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from amux_tmux import exc

DEFAULT_TIMEOUT = 10.0

# flock conflicts between two descriptors of one process too, so a thread that already
# holds a lock must not take it again (start holds a record's lock across create+update).
_held = threading.local()


def _held_paths() -> dict[str, int]:
    paths: dict[str, int] | None = getattr(_held, "paths", None)
    if paths is None:
        paths = _held.paths = {}
    return paths


@contextlib.contextmanager
def hold(path: Path, what: str, timeout: float = DEFAULT_TIMEOUT) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the ``with`` block (re-entrant per thread).

    Parameters
    ----------
    path : Path
        The lock file; created 0600 if missing and left in place afterwards.
    what : str
        What the lock guards, for the error message.
    timeout : float
        Seconds to wait; 0 tries exactly once.

    Raises
    ------
    LockTimeout
        When another process holds the lock for longer than ``timeout``.
    """
    key = str(path)
    held = _held_paths()
    if key in held:
        held[key] += 1
        try:
            yield
        finally:
            held[key] -= 1
        return

    import filelock

    lock = filelock.FileLock(
        path,
        timeout=timeout,
        mode=0o600,
        thread_local=False,
        preserve_lock_file=True,
        fallback_to_soft=False,
        poll_interval=0.005,
    )
    try:
        lock.acquire()
    except filelock.Timeout:
        raise exc.LockTimeout(what, timeout) from None
    held[key] = 1
    try:
        yield
    finally:
        del held[key]
        lock.release()
