"""``amux-tmux reconcile`` as cron runs it: real processes, real tmux on private sockets."""

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
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest

from amux_tmux.model import Status
from amux_tmux.store import FileStore
from amux_tmux.tmux import socket_path_for
from tests.helpers import (
    Cli,
    agent_command,
    backdate,
    describe,
    kill_server,
    make_record,
    owned_session,
    tmux_runner,
    wait_until,
)

OLD = 3600.0
SLEEP = ("sleep", "600")
BUSY = "reconcile: busy (another reconcile is running)\n"
JSON_KEYS = {
    "busy",
    "dry_run",
    "tmux_calls",
    "foreign_sessions",
    "problems",
    "unreachable",
    "actions",
}


@pytest.fixture(autouse=True)
def _socket_dir(cli: Cli) -> None:
    """tmux -S does not create the socket's directory; raw tmux calls may come first."""
    os.makedirs(os.path.dirname(cli.socket_path), mode=0o700, exist_ok=True)


@pytest.fixture
def store_id(cli: Cli) -> str:
    return cli.store.ensure_store_id()


@pytest.fixture
def other_socket(cli: Cli) -> Iterator[str]:
    """A second private socket (its path); its server is killed after the test."""
    path = socket_path_for(f"{cli.socket}b")
    yield path
    kill_server(path)


# --- helpers ------------------------------------------------------------------------------


def _pairs(data: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((a["action"], a["id"]) for a in data["actions"])


def _files(store: FileStore) -> dict[str, bytes]:
    if not store.sessions_dir.exists():
        return {}
    return {p.name: p.read_bytes() for p in sorted(store.sessions_dir.iterdir())}


def _tmux_state(cli: Cli) -> list[str]:
    out = cli.tmux("list-sessions", "-F", "#{session_id} #{session_name} #{@amux_orphan}")
    lines = out.stdout.splitlines() if out.returncode == 0 else []
    return sorted(ln for ln in lines if " _amux-batch-" not in ln)


def _sessions(cli: Cli) -> list[str]:
    """Session names, without a batch's own control session (gone soon on its own)."""
    return [n for n in cli.tmux_sessions() if not n.startswith("_amux-batch-")]


def _orphan_tag(cli: Cli, name: str) -> str:
    return cli.tmux("show-options", "-v", "-t", f"={name}:", "@amux_orphan").stdout.strip()


def _gone(cli: Cli, sid: str) -> None:
    """Record ``sid`` on the CLI's socket, last changed long ago, with no session."""
    make_record(cli.store, sid, cli.socket_path)
    backdate(cli.store, sid, OLD)


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


def _with_fake_tmux(directory: pathlib.Path, body: str) -> dict[str, str]:
    """The environment with a ``tmux`` script first on PATH."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "tmux"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return {**os.environ, "PATH": f"{directory}{os.pathsep}{os.environ['PATH']}"}


def _reconcile_json(cli: Cli, *args: str, code: int = 0, **kw: Any) -> dict[str, Any]:
    out = cli.run("reconcile", "--json", *args, code=code, **kw)
    data: dict[str, Any] = json.loads(out.stdout)
    return data


# --- quiet when all is well; the two directions -------------------------------------------


def test_quiet_when_all_is_well(cli: Cli) -> None:
    """A running agent, an ended record, a foreign session: nothing to say, exit 0."""
    cli.start(*agent_command())
    make_record(cli.store, "done01", cli.socket_path, Status.COMPLETED)
    cli.tmux("new-session", "-d", "-s", "work", *SLEEP)
    files = _files(cli.store)
    for args in ((), ("--remove",), ("--grace", "0"), ("--remove", "--grace", "0")):
        out = cli.run("reconcile", *args)
        assert (out.stdout, out.stderr) == ("", ""), describe(out)
    assert _files(cli.store) == files
    data = _reconcile_json(cli, "--grace", "0")
    assert set(data) == JSON_KEYS
    assert (data["actions"], data["problems"], data["unreachable"]) == ([], [], {})
    assert (data["foreign_sessions"], data["tmux_calls"]) == (1, 1)


def test_killed_session_marked_then_removed(cli: Cli) -> None:
    """Default: the record of a killed session becomes orphaned; --remove deletes it."""
    keep = cli.start(*agent_command())
    gone = cli.start(*agent_command())
    pid = cli.show(gone)["pid"]
    cli.tmux("kill-session", "-t", f"=amux-{gone}")
    wait_until(lambda: _ended(pid), what="the agent to end with its session")

    out = cli.run("reconcile", "--grace", "0")
    assert (out.stdout, out.stderr) == ("reconcile: 1 marked orphaned\n", "")
    assert cli.show(gone)["status"] == "orphaned"
    assert cli.show(keep)["status"] == "running"
    assert cli.run("reconcile", "--grace", "0").stdout == ""  # already orphaned: quiet

    out = cli.run("reconcile", "--remove", "--grace", "0")
    assert out.stdout == "reconcile: 1 records removed\n"
    assert [s.id for s in cli.store.list().sessions] == [keep]
    assert _sessions(cli) == [f"amux-{keep}"]


def _ended(pid: int) -> bool:
    """Gone, or a zombie (PID 1 here may never reap it)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except OSError:
        return True


def test_session_without_record_tagged_then_killed(
    cli: Cli, store_id: str, other_socket: str
) -> None:
    """An owned session with no record is tagged, then killed by --remove; a user's
    amux-foo, a name/id mismatch, another store's and a legacy session survive both,
    and so does an owned session on a socket no record names."""
    owned_session(cli.tmux, "mine01", store_id)
    cli.tmux("new-session", "-d", "-s", "amux-foo", *SLEEP)
    owned_session(cli.tmux, "abc123", store_id, name="amux-zzz999")
    owned_session(cli.tmux, "oth001", "0therst0re")
    owned_session(cli.tmux, "leg001", None)
    far = tmux_runner(other_socket)
    owned_session(far, "far001", store_id)
    bystanders = ["amux-foo", "amux-leg001", "amux-oth001", "amux-zzz999"]

    out = cli.run("reconcile", "--grace", "0")
    assert out.stdout == "reconcile: 1 tmux sessions tagged orphan\n"
    assert _orphan_tag(cli, "amux-mine01") == "1"
    assert [_orphan_tag(cli, n) for n in bystanders] == ["", "", "", ""]
    assert cli.run("reconcile", "--grace", "0").stdout == ""

    out = cli.run("reconcile", "--remove", "--grace", "0")
    assert out.stdout == "reconcile: 1 tmux sessions killed\n"
    assert _sessions(cli) == bystanders
    assert far("list-sessions", "-F", "#{session_name} #{@amux_orphan}").stdout == "amux-far001 \n"


def test_second_remove_plans_nothing_and_is_quiet(cli: Cli, store_id: str) -> None:
    """Right after a --remove run, the next one plans nothing and prints nothing."""
    _gone(cli, "idem01")
    make_record(cli.store, "idem02", cli.socket_path, Status.ORPHANED)
    backdate(cli.store, "idem02", OLD)
    owned_session(cli.tmux, "idem03", store_id)
    cli.tmux("new-session", "-d", "-s", "amux-foo", *SLEEP)
    first = _reconcile_json(cli, "--remove", "--grace", "0")
    assert _pairs(first) == [
        ("kill-session", "idem03"),
        ("remove-record", "idem01"),
        ("remove-record", "idem02"),
    ]
    assert {a["result"] for a in first["actions"]} == {"done"}
    second = _reconcile_json(cli, "--remove", "--grace", "0")
    assert second == {
        "busy": False,
        "dry_run": False,
        "tmux_calls": 1,
        "foreign_sessions": 1,
        "problems": [],
        "unreachable": {},
        "actions": [],
    }
    quiet = cli.run("reconcile", "--remove", "--grace", "0")
    assert (quiet.stdout, quiet.stderr) == ("", "")
    assert cli.store.list().sessions == []
    assert _sessions(cli) == ["amux-foo"]


# --- output -------------------------------------------------------------------------------


def test_json_shape_and_summary(cli: Cli, store_id: str) -> None:
    """--json gives every field of every action and of the run; people get one line."""
    cli.tmux("new-session", "-d", "-s", "work", *SLEEP)  # keeps the server up throughout
    _gone(cli, "out001")
    sid = owned_session(cli.tmux, "out002", store_id)
    data = _reconcile_json(cli, "--grace", "0")
    assert set(data) == JSON_KEYS
    assert (data["busy"], data["dry_run"], data["tmux_calls"]) == (False, False, 3)
    assert (data["foreign_sessions"], data["problems"], data["unreachable"]) == (1, [], {})
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
    _gone(cli, "out003")
    cli.tmux("kill-session", "-t", "=amux-out002")
    owned_session(cli.tmux, "out004", store_id)
    out = cli.run("reconcile", "--grace", "0", "--remove")
    # out001 (orphaned) and out003 removed; out004's session killed
    assert (out.stdout, out.stderr) == (
        "reconcile: 2 records removed, 1 tmux sessions killed\n",
        "",
    )


def test_reports_go_to_stderr_every_run(cli: Cli, store_id: str) -> None:
    """What no rule may fix (a failed record whose agent still runs) is one warning line
    per run, exit 0, nothing changed; --json lists it as `reported`."""
    owned_session(cli.tmux, "fail01", store_id)
    make_record(cli.store, "fail01", cli.socket_path, Status.FAILED)
    files = _files(cli.store)
    for _ in range(2):
        out = cli.run("reconcile")
        assert out.stdout == ""
        assert out.stderr == (
            "amux-tmux: warning: session fail01: record is failed but its agent still runs\n"
        )
    [action] = _reconcile_json(cli)["actions"]
    assert (action["action"], action["id"], action["result"]) == ("report", "fail01", "reported")
    assert _files(cli.store) == files
    assert _sessions(cli) == ["amux-fail01"]
    out = cli.run("reconcile", "--remove")
    assert (out.stdout, out.stderr) == ("reconcile: 1 tmux sessions killed\n", "")
    assert _sessions(cli) == []


def test_dry_run_changes_nothing(cli: Cli, store_id: str) -> None:
    """--dry-run prints the plan; record bytes and the tmux listing stay identical; it
    takes no lock, so it works while a reconcile runs."""
    _gone(cli, "dry001")
    make_record(cli.store, "dry002", cli.socket_path, Status.STARTING)
    backdate(cli.store, "dry002", OLD)
    owned_session(cli.tmux, "dry003", store_id)
    files, tmux = _files(cli.store), _tmux_state(cli)

    out = cli.run("reconcile", "--dry-run", "--grace", "0")
    assert out.stdout.splitlines() == [
        "reconcile (dry run): would do mark-orphaned x1, mark-failed x1, tag-session x1",
        "  mark-orphaned dry001 (amux-dry001): tmux session is gone",
        "  mark-failed dry002 (amux-dry002): starting for longer than the grace period",
        "  tag-session dry003 (amux-dry003): no record",
    ]
    data = _reconcile_json(cli, "--dry-run", "--remove", "--grace", "0")
    assert (data["dry_run"], data["tmux_calls"]) == (True, 1)
    assert _pairs(data) == [
        ("kill-session", "dry003"),
        ("mark-failed", "dry002"),
        ("remove-record", "dry001"),
    ]
    assert all("result" not in a for a in data["actions"])
    assert (_files(cli.store), _tmux_state(cli)) == (files, tmux)
    with _hold_flock(cli.store.lock_path("_reconcile")):
        out = cli.run("reconcile", "--dry-run", "--grace", "0")
        assert out.stdout.startswith("reconcile (dry run)")
    assert (_files(cli.store), _tmux_state(cli)) == (files, tmux)


class BadGrace(NamedTuple):
    test_id: str
    value: str


BAD_GRACES = [
    BadGrace("negative", "-1"),
    BadGrace("word", "soon"),
    BadGrace("nan", "nan"),
    BadGrace("inf", "inf"),
]


@pytest.mark.parametrize("case", BAD_GRACES, ids=[c.test_id for c in BAD_GRACES])
def test_bad_grace_is_a_usage_error(cli: Cli, case: BadGrace) -> None:
    """A --grace that is not seconds >= 0 is refused (exit 2, one line) before anything."""
    _gone(cli, "grace1")
    files = _files(cli.store)
    out = cli.run("reconcile", f"--grace={case.value}", code=2)
    assert out.stdout == ""
    assert len(out.stderr.splitlines()) == 1
    assert _files(cli.store) == files


# --- one at a time ------------------------------------------------------------------------


def test_busy_exits_0_and_changes_nothing(cli: Cli) -> None:
    """While another run holds the lock: "busy", exit 0 (cron must not mail an error)."""
    _gone(cli, "busy01")
    files = _files(cli.store)
    with _hold_flock(cli.store.lock_path("_reconcile")):
        out = cli.run("reconcile", "--grace", "0", "--remove")
        assert (out.stdout, out.stderr) == (BUSY, "")
        assert _reconcile_json(cli, "--grace", "0") == {"busy": True, "actions": []}
    assert _files(cli.store) == files
    assert cli.run("reconcile", "--grace", "0").stdout == "reconcile: 1 marked orphaned\n"


def test_five_at_once_act_once(cli: Cli, store_id: str) -> None:
    """5 reconcilers started together: all exit 0, one does everything, the others say
    busy or find nothing left; the end state is one run's."""
    for i in range(24):
        _gone(cli, f"many{i:03d}")
    for i in range(12):
        owned_session(cli.tmux, f"sess{i:03d}", store_id)
    cli.tmux("new-session", "-d", "-s", "amux-foo", *SLEEP)
    expected = _pairs(_reconcile_json(cli, "--dry-run", "--remove", "--grace", "0"))
    assert len(expected) == 36

    argv = cli.argv("reconcile", "--remove", "--grace", "0", "--json")
    procs = [
        subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cli.root
        )
        for _ in range(5)
    ]
    results = []
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=120)
            assert (proc.returncode, stderr) == (0, "")
            results.append(json.loads(stdout))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    acted = [r for r in results if r["actions"]]
    assert len(acted) == 1
    assert {a["result"] for a in acted[0]["actions"]} == {"done"}
    assert _pairs(acted[0]) == expected
    assert all(r["busy"] or not r["actions"] or r is acted[0] for r in results)
    assert cli.store.list().sessions == []
    assert _sessions(cli) == ["amux-foo"]


# --- starts and stops ---------------------------------------------------------------------


def test_starting_young_untouched_old_failed(cli: Cli) -> None:
    """A `starting` record within the (default 30 s) grace is left alone; older, failed."""
    make_record(cli.store, "strt01", cli.socket_path, Status.STARTING)
    files = _files(cli.store)
    for args in ((), ("--remove",)):
        assert cli.run("reconcile", *args).stdout == ""
    assert _files(cli.store) == files
    backdate(cli.store, "strt01", 45)
    out = cli.run("reconcile", "--remove")
    assert out.stdout == "reconcile: 1 marked failed\n"
    final = cli.show("strt01")
    assert final["status"] == "failed"
    assert final["stopped_at"] is not None


def test_interrupted_stop_is_finished(cli: Cli, store_id: str) -> None:
    """A `stopping` left behind by a stop that was killed: its session goes, it is stopped."""
    owned_session(cli.tmux, "stop01", store_id)
    make_record(cli.store, "stop01", cli.socket_path, Status.STOPPING)
    backdate(cli.store, "stop01", OLD)
    out = cli.run("reconcile")
    assert out.stdout == "reconcile: 1 tmux sessions killed, 1 marked stopped\n"
    assert cli.show("stop01")["status"] == "stopped"
    assert _sessions(cli) == []


# --- tmux that cannot be asked; failures; crashes -----------------------------------------


class Unreachable(NamedTuple):
    test_id: str
    args: tuple[str, ...]


UNREACHABLE = [
    Unreachable("mark", ()),
    Unreachable("remove", ("--remove",)),
    Unreachable("dry-run", ("--dry-run", "--remove")),
]


@pytest.mark.parametrize("case", UNREACHABLE, ids=[c.test_id for c in UNREACHABLE])
def test_unreachable_tmux_exits_5_and_changes_nothing(
    cli: Cli, tmp_path: pathlib.Path, case: Unreachable
) -> None:
    """A tmux that errors (not "no server running"): exit 5, one warning naming the
    socket, nothing on stdout, no record changed; --json says it in `unreachable`."""
    _gone(cli, "unr001")
    make_record(cli.store, "unr002", cli.socket_path, Status.STARTING)
    backdate(cli.store, "unr002", OLD)
    files = _files(cli.store)
    env = _with_fake_tmux(
        tmp_path / "bin", 'echo "error connecting to $2 (Permission denied)" >&2\nexit 1'
    )
    out = cli.run("reconcile", "--grace", "0", *case.args, code=5, env=env)
    assert out.stdout == ""
    [line] = out.stderr.splitlines()
    assert line.startswith(f"amux-tmux: warning: tmux on {cli.socket_path} could not be asked")
    assert "Permission denied" in line
    data = _reconcile_json(cli, "--grace", "0", *case.args, code=5, env=env)
    assert list(data["unreachable"]) == [cli.socket_path]
    assert data["actions"] == []
    assert _files(cli.store) == files


def test_failed_action_exits_1_others_still_run(
    cli: Cli, store_id: str, tmp_path: pathlib.Path
) -> None:
    """tmux refuses the batch of changes: those actions fail (exit 1, one stderr line
    each), the record marks are still done."""
    real = shutil.which("tmux")
    env = _with_fake_tmux(
        tmp_path / "bin",
        'for a in "$@"; do\n'
        '  [ "$a" = -C ] && { echo "fake: control mode refused" >&2; exit 1; }\n'
        "done\n"
        f'exec {real} "$@"',
    )
    _gone(cli, "fail01")
    owned_session(cli.tmux, "fail02", store_id)
    out = cli.run("reconcile", "--grace", "0", code=1, env=env)
    assert out.stdout == "reconcile: 1 marked orphaned, 1 failed\n"
    assert out.stderr.splitlines() == [
        "reconcile: tag-session fail02: tmux control mode failed: fake: control mode refused"
    ]
    assert cli.show("fail01")["status"] == "orphaned"
    assert _orphan_tag(cli, "amux-fail02") == ""
    data = _reconcile_json(cli, "--grace", "0", code=1, env=env)
    [action] = data["actions"]
    assert (action["id"], action["result"]) == ("fail02", "failed")
    assert "control mode refused" in action["detail"]


def test_sigkill_mid_run_then_rerun_completes(cli: Cli, store_id: str) -> None:
    """A reconciler killed -9 while it holds the lock: the rerun is not busy and finishes
    the job; a half-written temp file is ignored."""
    ids = [f"kill{i:03d}" for i in range(16)]
    for sid in ids:
        _gone(cli, sid)
    for i in range(4):
        owned_session(cli.tmux, f"ksess{i:02d}", store_id)
    store = cli.store
    proc: subprocess.Popen[str] | None = None
    with _hold_flock(store.lock_path(ids[8])):
        proc = subprocess.Popen(
            cli.argv("reconcile", "--remove", "--grace", "0"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cli.root,
        )
        try:
            # Sessions go first (one batch), then records in creation order, which
            # stall on the held lock.
            wait_until(lambda: not any(store.exists(s) for s in ids[:8]), what="removals")
            assert proc.poll() is None
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert sorted(s.id for s in store.list().sessions) == ids[8:]
    assert _sessions(cli) == []
    (store.sessions_dir / ".tmp-crashed.yaml").write_text("id: half")

    out = cli.run("reconcile", "--remove", "--grace", "0")
    assert (out.stdout, out.stderr) == ("reconcile: 8 records removed\n", "")
    assert store.list().sessions == []
    assert cli.run("reconcile", "--remove", "--grace", "0").stdout == ""


# --- records that cannot be read ----------------------------------------------------------


class BadRecord(NamedTuple):
    test_id: str
    key: str
    value: str


BAD_RECORDS = [
    BadRecord("status-number", "status", "12"),
    BadRecord("command-mapping", "command", "{a: b}"),
]


@pytest.mark.parametrize("case", BAD_RECORDS, ids=[c.test_id for c in BAD_RECORDS])
def test_unreadable_record_protects_its_session_every_run(
    cli: Cli, store_id: str, case: BadRecord
) -> None:
    """A record that is YAML but breaks the schema: its owned, running session survives
    `reconcile --remove` in text and JSON modes, the file stays as it is, and every run
    says so (a stderr line, or `problems` in JSON)."""
    owned_session(cli.tmux, "bad001", store_id)
    make_record(cli.store, "bad001", cli.socket_path)
    path = cli.store.path_for("bad001")
    lines = [ln for ln in path.read_text().splitlines() if not ln.startswith(f"{case.key}:")]
    path.write_text("\n".join([*lines, f"{case.key}: {case.value}"]) + "\n")
    backdate(cli.store, "bad001", OLD)
    files = _files(cli.store)
    for args in (("--remove",), ("--remove", "--grace", "0"), ()):
        out = cli.run("reconcile", *args)
        assert out.stdout == ""
        [line] = out.stderr.splitlines()
        assert line.startswith(f"amux-tmux: warning: bad record {path}: {case.key}")
        assert line.endswith("(its tmux session is left alone)")
        data = _reconcile_json(cli, *args)
        [problem] = data["problems"]
        assert (problem["id"], problem["path"], problem["quarantined_to"]) == (
            "bad001",
            str(path),
            None,
        )
        assert case.key in problem["why"]
        assert data["actions"] == []
    assert _sessions(cli) == ["amux-bad001"]
    assert _orphan_tag(cli, "amux-bad001") == ""
    assert _files(cli.store) == files


# --- where reconcile looks ----------------------------------------------------------------


def test_records_on_a_second_socket_are_visited(
    cli: Cli, store_id: str, other_socket: str
) -> None:
    """Every socket a record names is visited: a gone session there is orphaned, and an
    owned session there without a record is tagged."""
    far = tmux_runner(other_socket)
    owned_session(far, "far001", store_id)
    make_record(cli.store, "far002", other_socket)
    backdate(cli.store, "far002", OLD)
    data = _reconcile_json(cli, "--grace", "0")
    assert _pairs(data) == [("mark-orphaned", "far002"), ("tag-session", "far001")]
    assert {a["result"] for a in data["actions"]} == {"done"}
    assert cli.show("far002")["status"] == "orphaned"
    assert far("show-options", "-v", "-t", "=amux-far001:", "@amux_orphan").stdout == "1\n"


def test_directory_without_store_creates_nothing(cli: Cli, store_id: str) -> None:
    """Run in a tree with no .amux/: nothing is created, nothing on tmux is touched."""
    owned_session(cli.tmux, "some01", store_id)  # another project's session
    bare = cli.root / "elsewhere"
    bare.mkdir()
    nowhere = Cli(bare, cli.socket)
    tmux = _tmux_state(cli)
    for args in ((), ("--remove", "--grace", "0"), ("--dry-run",)):
        out = nowhere.run("reconcile", *args)
        assert (out.stdout, out.stderr) == ("", "")
    data = _reconcile_json(nowhere, "--remove", "--grace", "0")
    assert (data["actions"], data["tmux_calls"]) == ([], 0)
    assert list(bare.iterdir()) == []
    assert _tmux_state(cli) == tmux


def test_cron_like_environment(cli: Cli, tmp_path: pathlib.Path, store_id: str) -> None:
    """cron: `env -i` with only PATH and HOME, another cwd, --root and an absolute
    --socket. Records are found, the right server is asked, nothing else is needed."""
    _gone(cli, "cron01")
    owned_session(cli.tmux, "cron02", store_id)
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}
    argv = [
        "env", "-i", *(f"{k}={v}" for k, v in env.items()),
        sys.executable, "-m", "amux_tmux", "--root", str(cli.root),
        "--socket", cli.socket_path, "reconcile", "--grace", "0",
    ]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, cwd=home, timeout=60, check=False)
    assert (out.returncode, out.stderr) == (0, ""), describe(out)
    assert out.stdout == "reconcile: 1 marked orphaned, 1 tmux sessions tagged orphan\n"
    assert cli.show("cron01")["status"] == "orphaned"
    assert _orphan_tag(cli, "amux-cron02") == "1"
    assert list(home.iterdir()) == []
