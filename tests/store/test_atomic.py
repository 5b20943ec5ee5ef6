"""Durable atomic writes: modes, short writes, temp-file sweeping, writers killed mid-write."""

from __future__ import annotations

import os
import pathlib
import random
import signal
import stat
import time

import pytest

from amux_tmux.model import Session
from amux_tmux.store import FileStore, atomic, codec
from tests.conftest import wait_until
from tests.store.conftest import make_session, temp_files

# --- write_durable ----------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0o000, 0o077])
@pytest.mark.usefixtures("umask")
def test_write_durable_mode_and_stat(tmp_path: pathlib.Path, mask: int) -> None:
    os.umask(mask)
    target = tmp_path / "rec.yaml"
    st = atomic.write_durable(target, b"one\n")
    assert target.read_bytes() == b"one\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert st.st_ino == target.stat().st_ino
    assert st.st_size == 4
    old_ino = st.st_ino
    st2 = atomic.write_durable(target, b"two two\n")
    assert target.read_bytes() == b"two two\n"
    assert st2.st_ino != old_ino  # replaced, not rewritten in place
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["rec.yaml"]


def test_write_durable_custom_mode(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "x"
    atomic.write_durable(target, b"x", mode=0o640)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_write_durable_survives_short_writes(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write
    calls: list[int] = []

    def short_write(fd: int, data: bytes) -> int:
        calls.append(fd)
        return real_write(fd, bytes(data[:7]))

    data = bytes(range(256)) * 10
    target = tmp_path / "rec"
    monkeypatch.setattr(atomic.os, "write", short_write)
    atomic.write_durable(target, data)
    monkeypatch.undo()
    assert target.read_bytes() == data
    assert len(calls) == -(-len(data) // 7)


def test_write_durable_replaces_not_follows_symlink(tmp_path: pathlib.Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    link = tmp_path / "link"
    link.symlink_to(victim)
    atomic.write_durable(link, b"new")
    assert victim.read_bytes() == b"precious"
    assert not link.is_symlink()
    assert link.read_bytes() == b"new"


def test_write_durable_interrupted_cleans_up(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "rec"
    target.write_bytes(b"old")

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic.write_durable(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["rec"]


def test_is_temp_name() -> None:
    assert atomic.is_temp_name(".tmp-abc.yaml")
    assert not atomic.is_temp_name("session-abc.yaml")
    assert not atomic.is_temp_name("tmp-abc")


# --- sweeping ---------------------------------------------------------------------------


def backdate(path: pathlib.Path, seconds: float) -> None:
    when = time.time() - seconds
    os.utime(path, (when, when))


def test_sweep_removes_only_old_temp_files(tmp_path: pathlib.Path) -> None:
    old = tmp_path / ".tmp-old.yaml"
    young = tmp_path / ".tmp-young.yaml"
    record = tmp_path / "session-abc.yaml"
    for path in (old, young, record):
        path.write_bytes(b"x")
    backdate(old, atomic.TEMP_MAX_AGE + 60)
    backdate(record, atomic.TEMP_MAX_AGE * 10)
    removed = atomic.sweep_temp_files(tmp_path)
    assert removed == [old]
    assert sorted(os.listdir(tmp_path)) == [".tmp-young.yaml", "session-abc.yaml"]
    backdate(young, 20)
    assert atomic.sweep_temp_files(tmp_path, max_age=10) == [young]
    assert os.listdir(tmp_path) == ["session-abc.yaml"]


def test_store_sweeps_stale_temp_files_on_first_write(fstore: FileStore) -> None:
    fstore.create(make_session("abc"))
    stale = fstore.sessions_dir / ".tmp-crashed.yaml"
    fresh = fstore.sessions_dir / ".tmp-inflight.yaml"
    stale.write_bytes(b"half a rec")
    fresh.write_bytes(b"half a rec")
    backdate(stale, atomic.TEMP_MAX_AGE + 5)
    other = FileStore(fstore.root)
    other.update("abc", lambda s: s.evolve(name="x"))
    assert temp_files(fstore.sessions_dir) == [".tmp-inflight.yaml"]
    listing = other.list()
    assert [s.id for s in listing.sessions] == ["abc"]
    assert listing.problems == []


# --- a writer killed at random moments --------------------------------------------------

# Makes each write long enough to be interrupted part-way. (Short runs of letters: a long
# unbroken run makes secret masking quadratic, see test_file_store.)
PAD = "ab/" * 8000


def _writer_forever(root: pathlib.Path) -> None:
    store = FileStore(root, lock_timeout=30.0)

    def bump(s: Session) -> Session:
        return s.evolve(environment={**s.environment, "N": str(int(s.environment["N"]) + 1)})

    while True:
        store.update("counter", bump)


def _spawn_writer(root: pathlib.Path) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child is always killed
        code = 1
        try:
            _writer_forever(root)
        finally:
            os._exit(code)
    return pid


@pytest.mark.slow
def test_sigkilled_writer_never_exposes_a_torn_record(root: pathlib.Path) -> None:
    store = FileStore(root)
    store.create(make_session("counter", environment={"N": "0", "PAD": PAD}))
    path = store.path_for("counter")
    rng = random.Random(1234)
    reads = 0
    last = 0
    pid = 0
    try:
        for _ in range(100):
            pid = _spawn_writer(root)
            deadline = time.monotonic() + rng.uniform(0.002, 0.04)
            while True:
                raw = path.read_bytes()
                data = codec.decode(raw)  # raises on a torn or empty file
                assert data["id"] == "counter"
                value = int(store.get("counter").environment["N"])
                assert value >= int(data["environment"]["N"]) >= last
                last = value
                reads += 1
                if time.monotonic() >= deadline:
                    break
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            pid = 0
            assert os.WIFSIGNALED(status), f"writer died on its own: {status}"
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)

    assert reads >= 100
    assert store.list().problems == []
    assert os.listdir(store.quarantine_dir) == []
    final = store.get("counter")
    assert final.environment["PAD"] == PAD
    assert int(final.environment["N"]) == final.revision - 1
    assert int(final.environment["N"]) > 20  # the writers did write

    # Temp files of killed writers are ignored by readers ...
    leftovers = temp_files(store.sessions_dir)
    extra = store.sessions_dir / ".tmp-planted.yaml"
    extra.write_bytes(raw[: len(raw) // 2])
    listing = store.list()
    assert [s.id for s in listing.sessions] == ["counter"]
    assert listing.problems == []
    # ... kept while young (a live writer may own them) and swept once old.
    assert atomic.sweep_temp_files(store.sessions_dir) == []
    for name in [*leftovers, extra.name]:
        backdate(store.sessions_dir / name, atomic.TEMP_MAX_AGE + 1)
    swept = atomic.sweep_temp_files(store.sessions_dir)
    assert sorted(p.name for p in swept) == sorted([*leftovers, extra.name])
    assert temp_files(store.sessions_dir) == []
    # And the lock of the last killed writer is free again.
    updated = wait_until(
        lambda: FileStore(root, lock_timeout=5).update("counter", lambda s: s.evolve(name="ok")),
        what="the record lock to be free",
    )
    assert updated.name == "ok"
