"""``amux-tmux reconcile`` as cron runs it: real processes, a real tmux on private sockets."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from subprocess import CompletedProcess
from typing import Any

import pytest

from amux_tmux.manager import Manager, StartSpec
from amux_tmux.model import Session, Status
from amux_tmux.store import FileStore
from amux_tmux.tmux import socket_path_for
from tests.conftest import (
    agent_command,
    backdate,
    kill_server,
    make_record,
    owned_session,
    wait_until,
)

TmuxCli = Callable[..., CompletedProcess[str]]
CLI = [sys.executable, "-m", "amux_tmux"]
BUSY = "reconcile: busy (another reconcile is running)"


# --- helpers ---------------------------------------------------------------------------


def _argv(root: pathlib.Path, socket: str, *args: str) -> list[str]:
    return [*CLI, "--root", str(root), "--socket", socket, "reconcile", *args]


def _env(path_prefix: pathlib.Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("AMUX_ROOT", None)
    env.pop("AMUX_TMUX_SOCKET", None)
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env.get('PATH', '')}"
    return env


def _cli(
    root: pathlib.Path, socket: str, *args: str, path_prefix: pathlib.Path | None = None
) -> CompletedProcess[str]:
    return subprocess.run(
        _argv(root, socket, *args),
        capture_output=True,
        text=True,
        timeout=30,
        env=_env(path_prefix),
        cwd=root,
        check=False,
    )


def _json(out: CompletedProcess[str]) -> dict[str, Any]:
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def _pairs(data: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((a["action"], a["id"]) for a in data["actions"])


def _files(store: FileStore) -> dict[str, bytes]:
    if not store.sessions_dir.exists():
        return {}
    return {p.name: p.read_bytes() for p in sorted(store.sessions_dir.iterdir())}


def _tmux_state(tmux_cli: TmuxCli) -> list[str]:
    out = tmux_cli("list-sessions", "-F", "#{session_id} #{session_name} #{@amux_orphan}")
    return sorted(out.stdout.splitlines()) if out.returncode == 0 else []


def _sessions(tmux_cli: TmuxCli) -> list[str]:
    out = tmux_cli("list-sessions", "-F", "#{session_name}")
    return sorted(out.stdout.split()) if out.returncode == 0 else []


def _orphan_tag(tmux_cli: TmuxCli, name: str) -> str:
    return tmux_cli("show-options", "-v", "-t", f"={name}:", "@amux_orphan").stdout.strip()


@contextlib.contextmanager
def _hold_flock(path: pathlib.Path) -> Iterator[None]:
    """Hold an flock on ``path`` through our own open file, as another process would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _fake_tmux(directory: pathlib.Path, body: str) -> pathlib.Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "tmux"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return directory


@pytest.fixture
def other_socket(socket_name: str) -> Iterator[str]:
    """A second private socket name; its server is killed after the test."""
    name = f"{socket_name}other"
    yield name
    kill_server(socket_path_for(name))


def _start(manager: Manager) -> Session:
    return manager.start(StartSpec(command=agent_command()))


# --- the two directions ------------------------------------------------------------------


def test_killed_session_marked_then_removed(
    manager: Manager, store: FileStore, tmux_cli: TmuxCli, tmp_path: pathlib.Path
) -> None:
    """Default: the record of a killed session becomes orphaned; --remove deletes it."""
    sock = manager.backend.socket_path
    keep = _start(manager)
    gone = _start(manager)
    tmux_cli("kill-session", "-t", f"=amux-{gone.id}")

    out = _cli(tmp_path, sock, "--grace", "0")
    assert (out.returncode, out.stdout, out.stderr) == (0, "reconcile: 1 marked orphaned\n", "")
    assert store.get(gone.id).status is Status.ORPHANED
    assert store.get(keep.id).status is Status.RUNNING

    out = _cli(tmp_path, sock, "--grace", "0")
    assert (out.returncode, out.stdout) == (0, "")  # already orphaned: quiet

    out = _cli(tmp_path, sock, "--remove", "--grace", "0")
    assert (out.returncode, out.stdout) == (0, "reconcile: 1 records removed\n")
    assert not store.exists(gone.id)
    assert [s.id for s in store.list().sessions] == [keep.id]
    assert _sessions(tmux_cli) == [f"amux-{keep.id}"]


def test_session_without_record_tagged_then_killed(
    manager: Manager,
    store: FileStore,
    tmux_cli: TmuxCli,
    tmp_path: pathlib.Path,
    other_socket: str,
) -> None:
    """An owned session with no record is tagged, then killed by --remove; amux-foo (no
    tag), amux-zzz999 (tag of another id) and another socket's session survive both."""
    session = _start(manager)
    store.delete(session.id)
    name = f"amux-{session.id}"
    tmux_cli("new-session", "-d", "-s", "amux-foo", "sleep", "600")
    owned_session(tmux_cli, "abc123", name="amux-zzz999")
    other = Manager(store, socket=other_socket)
    theirs = _start(other)
    store.delete(theirs.id)

    out = _cli(tmp_path, socket_name_of(manager), "--grace", "0")
    assert (out.returncode, out.stdout) == (0, "reconcile: 1 tmux sessions tagged orphan\n")
    assert _orphan_tag(tmux_cli, name) == "1"
    assert _orphan_tag(tmux_cli, "amux-foo") == ""
    assert _orphan_tag(tmux_cli, "amux-zzz999") == ""
    assert _sessions(tmux_cli) == sorted(["amux-foo", "amux-zzz999", name])
    assert _cli(tmp_path, socket_name_of(manager), "--grace", "0").stdout == ""

    out = _cli(tmp_path, socket_name_of(manager), "--remove", "--grace", "0")
    assert (out.returncode, out.stdout) == (0, "reconcile: 1 tmux sessions killed\n")
    assert _sessions(tmux_cli) == ["amux-foo", "amux-zzz999"]
    live_other = other.backend.list_live()
    assert list(live_other) == [f"amux-{theirs.id}"]
    assert not live_other[f"amux-{theirs.id}"].orphan_tag


def socket_name_of(manager: Manager) -> str:
    """The CLI accepts the absolute socket path as --socket."""
    return manager.backend.socket_path


def test_second_remove_plans_nothing_and_is_quiet(
    manager: Manager, store: FileStore, tmux_cli: TmuxCli, tmp_path: pathlib.Path
) -> None:
    """Right after a --remove run, the next one plans 0 actions and prints nothing."""
    sock = manager.backend.socket_path
    make_record(store, "idem01", sock)
    make_record(store, "idem02", sock, Status.ORPHANED)
    owned_session(tmux_cli, "idem03")
    tmux_cli("new-session", "-d", "-s", "amux-foo", "sleep", "600")
    first = _json(_cli(tmp_path, sock, "--remove", "--grace", "0", "--json"))
    assert _pairs(first) == [
        ("kill-session", "idem03"),
        ("remove-record", "idem01"),
        ("remove-record", "idem02"),
    ]
    second = _json(_cli(tmp_path, sock, "--remove", "--grace", "0", "--json"))
    assert second == {"busy": False, "dry_run": False, "tmux_calls": 1, "actions": []}
    quiet = _cli(tmp_path, sock, "--remove", "--grace", "0")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    assert store.list().sessions == []
    assert _sessions(tmux_cli) == ["amux-foo"]


# --- output ------------------------------------------------------------------------------


def test_summary_and_json(
    manager: Manager, store: FileStore, tmux_cli: TmuxCli, tmp_path: pathlib.Path
) -> None:
    """One summary line for people; --json gives every field of every action."""
    sock = manager.backend.socket_path
    make_record(store, "out001", sock)
    owned_session(tmux_cli, "out002")
    sid = tmux_cli("display-message", "-p", "-t", "=amux-out002:", "#{session_id}").stdout.strip()
    data = _json(_cli(tmp_path, sock, "--grace", "0", "--json"))
    assert data["busy"] is False
    assert data["dry_run"] is False
    assert data["tmux_calls"] == 1
    assert data["actions"] == [
        {
            "action": "mark-orphaned",
            "id": "out001",
            "tmux_session": "amux-out001",
            "tmux_session_id": None,
            "reason": "tmux session is gone",
            "exit_code": None,
            "result": "done",
        },
        {
            "action": "tag-session",
            "id": "out002",
            "tmux_session": "amux-out002",
            "tmux_session_id": sid,
            "reason": "no record",
            "exit_code": None,
            "result": "done",
        },
    ]
    make_record(store, "out003", sock)
    tmux_cli("kill-session", "-t", "=amux-out002")
    owned_session(tmux_cli, "out004")
    out = _cli(tmp_path, sock, "--grace", "0", "--remove")
    assert out.returncode == 0
    assert out.stdout.splitlines() == [
        "reconcile: 2 records removed, 1 tmux sessions killed"
    ]  # out001 (orphaned) and out003; out004's session
    assert out.stderr == ""


def test_dry_run_changes_nothing(
    manager: Manager, store: FileStore, tmux_cli: TmuxCli, tmp_path: pathlib.Path
) -> None:
    """--dry-run prints the plan; record bytes and the tmux listing stay identical."""
    sock = manager.backend.socket_path
    make_record(store, "dry001", sock)
    make_record(store, "dry002", sock, Status.STARTING)
    backdate(store, "dry002", 3600)
    owned_session(tmux_cli, "dry003")
    files, tmux = _files(store), _tmux_state(tmux_cli)

    out = _cli(tmp_path, sock, "--dry-run", "--grace", "0")
    assert out.returncode == 0
    assert out.stdout.splitlines() == [
        "reconcile (dry run): would do mark-orphaned x1, mark-failed x1, tag-session x1",
        "  mark-orphaned dry001 (amux-dry001): tmux session is gone",
        "  mark-failed dry002 (amux-dry002): starting for longer than the grace period",
        "  tag-session dry003 (amux-dry003): no record",
    ]
    data = _json(_cli(tmp_path, sock, "--dry-run", "--remove", "--grace", "0", "--json"))
    assert data["dry_run"] is True
    assert data["tmux_calls"] == 1
    assert _pairs(data) == [
        ("kill-session", "dry003"),
        ("mark-failed", "dry002"),
        ("remove-record", "dry001"),
    ]
    assert all("result" not in a for a in data["actions"])
    assert (_files(store), _tmux_state(tmux_cli)) == (files, tmux)
    # A dry run takes no lock, so it works while a reconcile runs.
    with _hold_flock(store.lock_path("_reconcile")):
        assert _cli(tmp_path, sock, "--dry-run", "--grace", "0").stdout.startswith(
            "reconcile (dry run)"
        )
    assert (_files(store), _tmux_state(tmux_cli)) == (files, tmux)


def test_bad_grace_is_a_usage_error(tmp_path: pathlib.Path, socket_name: str) -> None:
    """A negative or non-numeric --grace is refused with exit 2 before anything runs."""
    for value in ("-1", "soon"):
        out = _cli(tmp_path, socket_name, "--grace", value)
        assert out.returncode == 2, value
        assert out.stdout == ""
        assert len(out.stderr.splitlines()) == 1


def test_grace_nan_is_refused(store: FileStore, manager: Manager, tmp_path: pathlib.Path) -> None:
    """--grace nan must not act on a record written a moment ago."""
    make_record(store, "nan001", manager.backend.socket_path)
    out = _cli(tmp_path, manager.backend.socket_path, "--grace", "nan")
    assert store.get("nan001").status is Status.RUNNING
    assert out.returncode == 2


# --- one at a time ---------------------------------------------------------------------------


def test_busy_when_another_reconcile_holds_the_lock(
    manager: Manager, store: FileStore, tmp_path: pathlib.Path
) -> None:
    """A second run exits 0 saying busy (cron must not mail an error) and changes nothing."""
    sock = manager.backend.socket_path
    make_record(store, "busy01", sock)
    files = _files(store)
    with _hold_flock(store.lock_path("_reconcile")):
        out = _cli(tmp_path, sock, "--grace", "0", "--remove")
        assert (out.returncode, out.stdout, out.stderr) == (0, BUSY + "\n", "")
        data = _json(_cli(tmp_path, sock, "--grace", "0", "--json"))
        assert data == {"busy": True, "actions": []}
    assert _files(store) == files
    out = _cli(tmp_path, sock, "--grace", "0")
    assert out.stdout == "reconcile: 1 marked orphaned\n"


def test_five_at_once_act_once(
    manager: Manager, store: FileStore, tmux_cli: TmuxCli, tmp_path: pathlib.Path
) -> None:
    """5 reconcilers started together: all exit 0, one does everything, the rest say busy
    or (if they got the lock after it) find nothing to do; the end state is one run's."""
    sock = manager.backend.socket_path
    for i in range(24):
        make_record(store, f"many{i:03d}", sock)
    for i in range(12):
        owned_session(tmux_cli, f"sess{i:03d}")
    tmux_cli("new-session", "-d", "-s", "amux-foo", "sleep", "600")
    expected = _pairs(
        _json(_cli(tmp_path, sock, "--dry-run", "--remove", "--grace", "0", "--json"))
    )
    assert len(expected) == 36

    argv = _argv(tmp_path, sock, "--remove", "--grace", "0", "--json")
    procs = [
        subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
            cwd=tmp_path,
        )
        for _ in range(5)
    ]
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr
        assert stderr == ""
        results.append(json.loads(stdout))

    acted = [r for r in results if r["actions"]]
    assert len(acted) == 1
    done = [(a["action"], a["id"]) for a in acted[0]["actions"]]
    assert all(a["result"] == "done" for a in acted[0]["actions"])
    assert sorted(done) == expected
    assert len(set(done)) == len(done)
    for r in results:
        assert r["busy"] is True or r["actions"] == [] or r is acted[0]
    assert store.list().sessions == []
    assert _sessions(tmux_cli) == ["amux-foo"]
    assert _cli(tmp_path, sock, "--remove", "--grace", "0").stdout == ""


# --- grace for starts ---------------------------------------------------------------------


def test_starting_young_untouched_old_failed(
    manager: Manager, store: FileStore, tmp_path: pathlib.Path
) -> None:
    """A 'starting' record within the grace period is left alone; older, it is failed."""
    sock = manager.backend.socket_path
    make_record(store, "strt01", sock, Status.STARTING)
    files = _files(store)
    for args in ((), ("--remove",)):
        out = _cli(tmp_path, sock, *args)  # default grace: 30 s
        assert (out.returncode, out.stdout) == (0, "")
    assert _files(store) == files
    backdate(store, "strt01", 45)
    out = _cli(tmp_path, sock, "--remove")
    assert (out.returncode, out.stdout) == (0, "reconcile: 1 marked failed\n")
    final = store.get("strt01")
    assert final.status is Status.FAILED
    assert final.stopped_at is not None


# --- tmux unreachable, failures, crashes ---------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [(), ("--remove",), ("--dry-run",), ("--remove", "--json")],
    ids=["mark", "remove", "dry-run", "json"],
)
def test_unreachable_tmux_exits_5_and_changes_nothing(
    manager: Manager, store: FileStore, tmp_path: pathlib.Path, args: tuple[str, ...]
) -> None:
    """A tmux that errors (not 'no server running'): exit 5, one stderr line, no change."""
    sock = manager.backend.socket_path
    make_record(store, "unr001", sock)
    make_record(store, "unr002", sock, Status.STARTING)
    backdate(store, "unr002", 3600)
    files = _files(store)
    fake = _fake_tmux(
        tmp_path / "bin", 'echo "error connecting to $2 (Permission denied)" >&2\nexit 1'
    )
    out = _cli(tmp_path, sock, "--grace", "0", *args, path_prefix=fake)
    assert out.returncode == 5
    assert out.stdout == ""
    [line] = out.stderr.splitlines()
    assert line.startswith("amux-tmux: error: tmux list-panes failed:")
    assert "Permission denied" in line
    assert _files(store) == files


def test_failed_action_exits_1_others_still_run(
    manager: Manager, store: FileStore, tmux_cli: TmuxCli, tmp_path: pathlib.Path
) -> None:
    """One action fails (tmux refuses set-option): exit 1, reported on stderr, the rest done."""
    sock = manager.backend.socket_path
    real = shutil.which("tmux")
    fake = _fake_tmux(
        tmp_path / "bin",
        'for a in "$@"; do\n'
        '  [ "$a" = set-option ] && { echo "fake: set-option refused" >&2; exit 1; }\n'
        f'done\nexec {real} "$@"',
    )
    make_record(store, "fail01", sock)
    owned_session(tmux_cli, "fail02")
    out = _cli(tmp_path, sock, "--grace", "0", path_prefix=fake)
    assert out.returncode == 1
    assert out.stdout == "reconcile: 1 marked orphaned, 1 failed\n"
    assert out.stderr.splitlines() == [
        "reconcile: tag-session fail02: tmux set-option failed: fake: set-option refused"
    ]
    assert store.get("fail01").status is Status.ORPHANED
    assert _orphan_tag(tmux_cli, "amux-fail02") == ""
    data = json.loads(_cli(tmp_path, sock, "--grace", "0", "--json", path_prefix=fake).stdout)
    [action] = data["actions"]
    assert (action["id"], action["result"]) == ("fail02", "failed")
    assert "set-option refused" in action["detail"]


def test_sigkill_mid_run_then_rerun_completes(
    manager: Manager, store: FileStore, tmux_cli: TmuxCli, tmp_path: pathlib.Path
) -> None:
    """A reconciler killed -9 while it holds the lock: the rerun is not busy and finishes."""
    sock = manager.backend.socket_path
    ids = [f"kill{i:03d}" for i in range(16)]
    for sid in ids:
        make_record(store, sid, sock)
    for i in range(4):
        owned_session(tmux_cli, f"ksess{i:02d}")
    blocked = ids[8]
    proc: subprocess.Popen[str] | None = None
    with _hold_flock(store.lock_path(blocked)):
        proc = subprocess.Popen(
            _argv(tmp_path, sock, "--remove", "--grace", "0"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
            cwd=tmp_path,
        )
        try:
            # Records are handled in creation order; the run stalls on the held lock.
            wait_until(
                lambda: not any(store.exists(sid) for sid in ids[:8]), what="first removals"
            )
            assert proc.poll() is None
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert sorted(s.id for s in store.list().sessions) == ids[8:]
    assert len(_sessions(tmux_cli)) == 4
    # What a writer killed mid-write leaves behind: readers must ignore it.
    (store.sessions_dir / ".tmp-crashed.yaml").write_text("id: half")

    out = _cli(tmp_path, sock, "--remove", "--grace", "0")
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout == "reconcile: 8 records removed, 4 tmux sessions killed\n"
    assert store.list().sessions == []
    assert _sessions(tmux_cli) == []
    assert _cli(tmp_path, sock, "--remove", "--grace", "0").stdout == ""
