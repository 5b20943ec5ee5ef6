"""Injected I/O failures: a clear StoreError, the old record intact, no temp file left."""

from __future__ import annotations

import errno
import os
import pathlib
from collections.abc import Callable

import pytest

from amux_tmux import exc
from amux_tmux.store import FileStore, atomic
from tests.store.conftest import make_session, temp_files


def fd_path(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


def is_temp_fd(fd: int) -> bool:
    return os.path.basename(fd_path(fd)).startswith(atomic.TEMP_PREFIX)


def oserror(code: int) -> OSError:
    return OSError(code, os.strerror(code))


@pytest.fixture
def seeded(fstore: FileStore) -> tuple[FileStore, bytes]:
    fstore.create(make_session("abc", name="before", environment={"N": "1"}))
    return fstore, fstore.path_for("abc").read_bytes()


def failing_write(monkeypatch: pytest.MonkeyPatch, code: int, after_bytes: int = 0) -> None:
    """Make writes to temp files fail with ``code`` once ``after_bytes`` went through."""
    real = os.write
    written = {"n": 0}

    def fake(fd: int, data: bytes) -> int:
        if not is_temp_fd(fd):
            return real(fd, data)
        room = after_bytes - written["n"]
        if room <= 0:
            raise oserror(code)
        n = real(fd, bytes(data[:room]))
        written["n"] += n
        return n

    monkeypatch.setattr(atomic.os, "write", fake)


def failing_fsync(monkeypatch: pytest.MonkeyPatch, code: int, on: Callable[[int], bool]) -> None:
    real = os.fsync

    def fake(fd: int) -> None:
        if on(fd):
            raise oserror(code)
        real(fd)

    monkeypatch.setattr(atomic.os, "fsync", fake)


def failing_replace(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    real = os.replace

    def fake(src: object, dst: object, *args: object, **kwargs: object) -> None:
        if os.path.basename(str(src)).startswith(atomic.TEMP_PREFIX):
            raise oserror(code)
        real(src, dst, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(atomic.os, "replace", fake)


INJECTIONS: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "write-ENOSPC": lambda mp: failing_write(mp, errno.ENOSPC),
    "write-ENOSPC-after-partial": lambda mp: failing_write(mp, errno.ENOSPC, after_bytes=40),
    "write-EDQUOT": lambda mp: failing_write(mp, errno.EDQUOT, after_bytes=1),
    "fsync-EIO": lambda mp: failing_fsync(mp, errno.EIO, is_temp_fd),
    "replace-EACCES": lambda mp: failing_replace(mp, errno.EACCES),
    "replace-EXDEV": lambda mp: failing_replace(mp, errno.EXDEV),
}
MESSAGES = {
    errno.ENOSPC: os.strerror(errno.ENOSPC),
    errno.EIO: os.strerror(errno.EIO),
}


@pytest.mark.parametrize("inject", list(INJECTIONS))
def test_update_failure_keeps_old_record(
    seeded: tuple[FileStore, bytes], monkeypatch: pytest.MonkeyPatch, inject: str
) -> None:
    store, before = seeded
    INJECTIONS[inject](monkeypatch)
    with pytest.raises(exc.StoreError) as info:
        store.update("abc", lambda s: s.evolve(name="after", environment={"N": "2" * 200}))
    monkeypatch.undo()

    err = info.value
    assert err.exit_code == exc.EXIT_FAILED
    assert not isinstance(err, exc.CorruptRecord)
    assert "abc" in str(err)
    assert "unchanged" in str(err)
    if inject.startswith("write-ENOSPC"):
        assert MESSAGES[errno.ENOSPC] in str(err)
    if inject == "fsync-EIO":
        assert MESSAGES[errno.EIO] in str(err)
    assert store.path_for("abc").read_bytes() == before
    assert temp_files(store.sessions_dir) == []
    assert sorted(os.listdir(store.sessions_dir)) == ["session-abc.yaml"]
    assert store.get("abc").name == "before"
    # The lock was released and the store works again once the disk does.
    assert store.update("abc", lambda s: s.evolve(name="after")).revision == 2


@pytest.mark.parametrize("inject", ["write-ENOSPC", "fsync-EIO", "replace-EACCES"])
def test_create_failure_leaves_nothing(
    fstore: FileStore, monkeypatch: pytest.MonkeyPatch, inject: str
) -> None:
    fstore.ensure_dirs()
    INJECTIONS[inject](monkeypatch)
    with pytest.raises(exc.StoreError):
        fstore.create(make_session("abc"))
    monkeypatch.undo()
    assert os.listdir(fstore.sessions_dir) == []
    assert fstore.list().sessions == []
    assert fstore.create(make_session("abc")).revision == 1


def test_mkstemp_failure_is_a_store_error(
    seeded: tuple[FileStore, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, before = seeded
    import tempfile

    def no_room(*_a: object, **_k: object) -> tuple[int, str]:
        raise oserror(errno.ENOSPC)

    monkeypatch.setattr(tempfile, "mkstemp", no_room)
    with pytest.raises(exc.StoreError):
        store.update("abc", lambda s: s.evolve(name="after"))
    monkeypatch.undo()
    assert store.path_for("abc").read_bytes() == before


def test_delete_failure_keeps_record(
    seeded: tuple[FileStore, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, before = seeded

    def refuse(path: object, *a: object, **k: object) -> None:
        raise oserror(errno.EACCES)

    monkeypatch.setattr("amux_tmux.store.file.os.unlink", refuse)
    with pytest.raises((exc.StoreError, OSError)):
        store.delete("abc")
    monkeypatch.undo()
    assert store.path_for("abc").read_bytes() == before


def test_unreadable_record_is_an_error_not_quarantined(
    seeded: tuple[FileStore, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """EACCES/EIO on open is the disk's fault, not the record's: keep the file."""
    store, before = seeded
    real_open = os.open

    def eio(path: object, flags: int, *a: object, **k: object) -> int:
        if str(path).endswith("session-abc.yaml"):
            raise oserror(errno.EIO)
        return real_open(path, flags, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr("amux_tmux.store.file.os.open", eio)
    with pytest.raises(exc.StoreError):
        store.get("abc")
    monkeypatch.undo()
    assert store.path_for("abc").read_bytes() == before
    assert os.listdir(store.quarantine_dir) == []


def test_dir_fsync_failure_does_not_claim_old_record_kept(
    seeded: tuple[FileStore, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, before = seeded
    failing_fsync(monkeypatch, errno.EIO, lambda fd: pathlib.Path(fd_path(fd)).is_dir())
    with pytest.raises(exc.StoreError) as info:
        store.update("abc", lambda s: s.evolve(name="after"))
    monkeypatch.undo()
    # The rename happened, so the error must not claim the previous record is intact.
    assert store.get("abc").name == "after"
    assert store.path_for("abc").read_bytes() != before
    assert "unchanged" not in str(info.value)
    assert "may not survive a crash" in str(info.value)
