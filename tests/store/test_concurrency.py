"""Many processes incrementing one record: the lock loses nothing, no lock loses plenty."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import time

import pytest

from amux_tmux import exc
from amux_tmux.store import FileStore, codec
from tests.store.conftest import make_session, python, stop, temp_files

WORKER = r"""
import os, sys, pathlib
from amux_tmux.store import FileStore

root, count, mode = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
store = FileStore(root, lock_timeout=60.0)
store.get("counter")  # warm up imports before the start line

def bump(s):
    return s.evolve(environment={"N": str(int(s.environment["N"]) + 1)})

print("ready", flush=True)
sys.stdin.readline()  # the start signal: every worker begins at once
for _ in range(count):
    if mode == "locked":
        store.update("counter", bump)
    else:
        # The same read-modify-write with the lock left out.
        current = store.get("counter")
        changed = bump(current).evolve(revision=current.revision + 1)
        store._write(store.path_for("counter"), changed)
print("done", flush=True)
"""


def run_workers(root: pathlib.Path, workers: int, count: int, mode: str) -> tuple[int, int]:
    """Run ``workers`` processes of ``count`` increments; return (bad reads, good reads)."""
    store = FileStore(root)
    store.create(make_session("counter", environment={"N": "0"}))
    path = store.path_for("counter")
    procs: list[subprocess.Popen[str]] = []
    bad = good = 0
    try:
        for _ in range(workers):
            procs.append(
                python(
                    WORKER,
                    str(root),
                    str(count),
                    mode,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            )
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n", proc.stderr and proc.stderr.read()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        # Read alongside the writers: every read sees a whole record.
        deadline = time.monotonic() + 120
        last = -1
        while any(p.poll() is None for p in procs):
            assert time.monotonic() < deadline, "workers did not finish"
            raw = path.read_bytes()
            try:
                value = int(codec.decode(raw)["environment"]["N"])
            except (ValueError, KeyError, TypeError):
                bad += 1
                continue
            good += 1
            if mode == "locked":
                assert value >= last  # never goes back
                last = value
            time.sleep(0.002)
        for proc in procs:
            out, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
            assert out.strip() == "done"
    finally:
        for proc in procs:
            stop(proc)
    return bad, good


@pytest.mark.slow
def test_locked_increments_lose_nothing(root: pathlib.Path) -> None:
    workers, count = 8, 500
    bad, good = run_workers(root, workers, count, "locked")
    store = FileStore(root)
    final = store.get("counter")
    assert final.environment["N"] == str(workers * count)
    assert final.revision == 1 + workers * count
    assert bad == 0
    assert good > 0
    assert store.list().problems == []
    assert temp_files(store.sessions_dir) == []
    assert os.listdir(store.quarantine_dir) == []
    assert sorted(os.listdir(store.sessions_dir)) == ["session-counter.yaml"]


@pytest.mark.slow
def test_control_without_lock_loses_updates(root: pathlib.Path) -> None:
    """The same workload minus the lock must lose updates, or the test above proves nothing."""
    workers, count = 4, 150
    bad, _good = run_workers(root, workers, count, "unlocked")
    store = FileStore(root)
    final = int(store.get("counter").environment["N"])
    assert 0 < final < workers * count
    # Even unlocked, atomic replace never exposes a torn file.
    assert bad == 0
    assert temp_files(store.sessions_dir) == []


HOLDER = r"""
import pathlib, sys
from amux_tmux.store import FileStore
store = FileStore(pathlib.Path(sys.argv[1]))
with store.lock(sys.argv[2]):
    print("locked", flush=True)
    sys.stdin.readline()
print("released", flush=True)
"""


def start_holder(root: pathlib.Path, session_id: str) -> subprocess.Popen[str]:
    proc = python(
        HOLDER,
        str(root),
        session_id,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line != "locked\n":
        stop(proc)
        pytest.fail(f"lock holder did not start: {line!r}")
    return proc


@pytest.mark.parametrize("how", ["release", "sigkill"])
def test_lock_timeout_when_another_process_holds_the_lock(root: pathlib.Path, how: str) -> None:
    store = FileStore(root, lock_timeout=0.3)
    store.create(make_session("abc", name="before"))
    store.create(make_session("other"))
    path = store.path_for("abc")
    before = path.read_bytes()
    proc = start_holder(root, "abc")
    try:
        started = time.monotonic()
        with pytest.raises(exc.LockTimeout) as info:
            store.update("abc", lambda s: s.evolve(name="after"))
        elapsed = time.monotonic() - started
        assert 0.25 <= elapsed < 3.0
        assert info.value.exit_code == exc.EXIT_BUSY
        assert "abc" in str(info.value)
        assert path.read_bytes() == before

        started = time.monotonic()
        with pytest.raises(exc.LockTimeout), store.lock("abc", timeout=0):
            pass
        assert time.monotonic() - started < 1.0
        with pytest.raises(exc.LockTimeout):
            store.delete("abc")
        assert path.read_bytes() == before

        # Readers never wait for a lock; other records are not blocked.
        assert store.get("abc").name == "before"
        assert [s.id for s in store.list().sessions] == sorted(["abc", "other"])
        assert store.update("other", lambda s: s.evolve(name="free")).revision == 2

        if how == "release":
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write("\n")
            proc.stdin.flush()
            assert proc.stdout.readline() == "released\n"
        else:
            proc.send_signal(signal.SIGKILL)  # a crashed holder frees the lock too
        proc.wait(timeout=10)
    finally:
        stop(proc)
    updated = store.update("abc", lambda s: s.evolve(name="after"))
    assert updated.revision == 2
    assert store.get("abc").name == "after"
    assert store.lock_path("abc").exists()


def test_waiter_gets_the_lock_once_released(root: pathlib.Path) -> None:
    store = FileStore(root, lock_timeout=10.0)
    store.create(make_session("abc"))
    proc = start_holder(root, "abc")
    try:
        waiter = python(
            "import pathlib, sys\n"
            "from amux_tmux.store import FileStore\n"
            "s = FileStore(pathlib.Path(sys.argv[1]), lock_timeout=10)\n"
            "print('waiting', flush=True)\n"
            "print(s.update('abc', lambda r: r.evolve(name='waited')).revision, flush=True)\n",
            str(root),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert waiter.stdout is not None
            assert waiter.stdout.readline() == "waiting\n"
            assert store.get("abc").revision == 1  # still blocked
            assert proc.stdin is not None
            proc.stdin.write("\n")
            proc.stdin.flush()
            out, err = waiter.communicate(timeout=15)
            assert waiter.returncode == 0, err
            assert out.strip() == "2"
        finally:
            stop(waiter)
    finally:
        stop(proc)
    assert store.get("abc").name == "waited"


LISTER = r"""
import pathlib, sys
from amux_tmux.store import FileStore
root, rounds = pathlib.Path(sys.argv[1]), int(sys.argv[2])
store = FileStore(root)
for _ in range(rounds):
    listing = FileStore(root).list() if _ % 2 else store.list()
    assert not listing.problems, listing.problems
    assert len(listing.sessions) == 3, listing.sessions
print("done", flush=True)
"""


@pytest.mark.slow
def test_lists_racing_writers_and_each_other_never_see_a_wrong_row(root: pathlib.Path) -> None:
    """Writers replace records while two processes list (and rewrite the index)."""
    store = FileStore(root)
    for sid in ("counter", "steady", "third"):
        store.create(make_session(sid, environment={"N": "0"}))
    time.sleep(0.2)
    store.list()  # an index to start from
    writer = python(
        WORKER, str(root), "300", "locked", stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    lister = python(LISTER, str(root), "300", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert writer.stdout is not None and writer.stdin is not None
        assert writer.stdout.readline() == "ready\n"
        writer.stdin.write("go\n")
        writer.stdin.flush()
        last = 0
        while writer.poll() is None:
            for listing in (store.list(), FileStore(root).list()):
                assert listing.problems == []
                record = {s.id: s for s in listing.sessions}["counter"]
                assert int(record.environment["N"]) == record.revision - 1
                assert record.revision >= last  # never an older row than one already seen
                last = record.revision
        out, err = lister.communicate(timeout=120)
        assert lister.returncode == 0, err
        assert out.strip() == "done"
    finally:
        stop(writer)
        stop(lister)
    final = FileStore(root).list()
    assert {s.id: s.revision for s in final.sessions}["counter"] == 301
