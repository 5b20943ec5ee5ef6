"""Manager.reconcile and reconcile.apply on a real tmux server (private sockets only).

Sessions a store owns are made with ``owned_session`` (named ``amux-<id>``, tagged with the
id and the store's id); bystanders are made the same way with other tags, or none.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pathlib
import shutil
import signal
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from subprocess import CompletedProcess
from typing import Any, NamedTuple

import pytest

from amux_tmux import exc, procs
from amux_tmux import reconcile as rc
from amux_tmux.manager import Manager, ReconcileReport, StartSpec
from amux_tmux.model import Session, Status
from amux_tmux.reconcile import Kind, Policy
from amux_tmux.store import FileStore, codec
from amux_tmux.tmux import socket_path_for
from tests.helpers import (
    agent_command,
    backdate,
    kill_server,
    make_record,
    owned_session,
    tmux_runner,
    wait_until,
)

TmuxCli = Callable[..., CompletedProcess[str]]

MARK0 = Policy(remove=False, grace=0)
REMOVE0 = Policy(remove=True, grace=0)
OLD = 3600.0
OTHER_STORE = "0therst0re"
#: Commands tmux runs in test sessions: one that waits, one that exits with what it reads.
SLEEP = ("sleep", "600")
READ_EXIT = ("sh", "-c", "read code; exit $code")


@pytest.fixture(autouse=True)
def _socket_dir(manager: Manager) -> None:
    """tmux -S does not create the socket's directory; the first raw call may need it."""
    os.makedirs(os.path.dirname(manager.backend.socket_path), mode=0o700, exist_ok=True)


@pytest.fixture
def store_id(store: FileStore) -> str:
    return store.ensure_store_id()


@pytest.fixture
def other_socket(socket_name: str) -> Iterator[str]:
    """A second private socket (its path); its server is killed after the test."""
    path = socket_path_for(f"{socket_name}b")
    yield path
    kill_server(path)


# --- helpers ------------------------------------------------------------------------------


def _start(manager: Manager, *agent_args: str) -> Session:
    return manager.start(StartSpec(command=agent_command(*agent_args)))


def _kinds(report: ReconcileReport) -> list[tuple[Kind, str]]:
    return [(a.kind, a.session_id) for a in report.actions]


def _results(report: ReconcileReport) -> list[tuple[Kind, str, object]]:
    return [(o.action.kind, o.action.session_id, o.to_dict()["result"]) for o in report.outcomes]


def _sessions(tmux: TmuxCli) -> list[str]:
    out = tmux("list-sessions", "-F", "#{session_name}")
    names = out.stdout.split() if out.returncode == 0 else []
    return sorted(n for n in names if not n.startswith("_amux-batch"))


def _orphan_tag(tmux: TmuxCli, name: str) -> str:
    return tmux("show-options", "-v", "-t", f"={name}:", "@amux_orphan").stdout.strip()


def _pane_pid(tmux: TmuxCli, name: str) -> int:
    return int(tmux("display-message", "-p", "-t", f"={name}:", "#{pane_pid}").stdout)


def _files(store: FileStore) -> dict[str, bytes]:
    if not store.sessions_dir.exists():
        return {}
    return {p.name: p.read_bytes() for p in sorted(store.sessions_dir.iterdir())}


def _record_for(
    store: FileStore,
    tmux: TmuxCli,
    sid: str,
    status: Status = Status.RUNNING,
    age: float = OLD,
    **fields: Any,
) -> Session:
    """A record of the owned session amux-<sid> (which must exist), its agent's pid and
    create time recorded, last changed ``age`` seconds ago."""
    pid = _pane_pid(tmux, f"amux-{sid}")
    make_record(
        store,
        sid,
        tmux.socket_path,  # type: ignore[attr-defined]
        status,
        pid=pid,
        pid_create_time=procs.facts(pid).create_time,
        **fields,
    )
    backdate(store, sid, age)
    return store.get(sid)


def _raw(manager: Manager) -> TmuxCli:
    run = tmux_runner(manager.backend.socket_path)
    run.socket_path = manager.backend.socket_path  # type: ignore[attr-defined]
    return run


def _not_alive(record: Session) -> Callable[[], bool]:
    assert record.pid is not None
    return lambda: not rc.is_alive(record, procs.facts(record.pid))  # type: ignore[arg-type]


def _looked_ended(manager: Manager, sid: str) -> Callable[[], bool]:
    """Whether the record has ended, looking again as any command would if need be.

    The pane-died hook usually records an exit at once, but tmux 3.3a sometimes marks
    a pane dead seconds before it says how it ended, after the hook has given up; the
    next look (`ls --live`, `show`, reconcile) records it then, with the same judgement.
    """

    def ended() -> bool:
        record = manager.store.get(sid)
        return record.status.ended or manager.observe([record])[0].session.status.ended

    return ended


def _exiting_session(tmux: TmuxCli, sid: str, store_id: str) -> Callable[[int], None]:
    """An owned session whose pane stays when its program exits (no pane-died hook, so
    only reconcile can notice); returns a function that makes it exit with a code."""
    name = f"amux-{sid}"
    owned_session(tmux, sid, store_id, command=READ_EXIT)
    assert tmux("set-option", "-w", "-t", f"={name}:", "remain-on-exit", "on").returncode == 0

    def finish(code: int) -> None:
        assert tmux("send-keys", "-t", f"={name}:", str(code), "Enter").returncode == 0

    return finish


@contextlib.contextmanager
def _hold_flock(path: pathlib.Path) -> Iterator[None]:
    """Hold an flock on ``path`` through a separate open file (as another process would)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _is_locked(path: pathlib.Path) -> bool:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _edit(store: FileStore, sid: str, key: str, value: str | None) -> None:
    """Change (or with None delete) one top-level line of a record file, as a person would."""
    path = store.path_for(sid)
    lines = path.read_text().splitlines()
    out = [ln for ln in lines if not ln.startswith(f"{key}:")]
    if value is not None:
        out.append(f"{key}: {value}")
    path.write_text("\n".join(out) + "\n")


def _between_plan_and_apply(
    monkeypatch: pytest.MonkeyPatch, manager: Manager, change: Callable[[], None]
) -> None:
    """Run ``change`` when reconcile lists tmux the second time (apply's fresh look)."""
    real = manager.backend.list_live
    calls = [0]

    def list_live() -> Any:
        calls[0] += 1
        if calls[0] == 2:
            change()
        return real()

    monkeypatch.setattr(manager.backend, "list_live", list_live)


# --- records whose session is gone, dead or stale -----------------------------------------


def test_killed_session_is_marked_orphaned_once(manager: Manager) -> None:
    """Mark mode: a record whose session was killed (agent gone) becomes orphaned, once;
    apply lists tmux once more to re-judge (2 tmux processes), a clean run asks once."""
    tmux = _raw(manager)
    session = _start(manager)
    tmux("kill-session", "-t", f"=amux-{session.id}")
    wait_until(_not_alive(session), what="the agent to end with its session")
    report = manager.reconcile(MARK0)
    assert _results(report) == [(Kind.MARK_ORPHANED, session.id, "done")]
    assert report.tmux_calls == 2
    assert manager.store.get(session.id).status is Status.ORPHANED
    again = manager.reconcile(MARK0)
    assert (again.actions, again.outcomes, again.tmux_calls) == ([], [], 1)


def test_killed_session_record_removed(manager: Manager) -> None:
    """--remove: the record of a killed session is deleted; a live one is kept."""
    tmux = _raw(manager)
    keep = _start(manager)
    gone = _start(manager)
    tmux("kill-session", "-t", f"=amux-{gone.id}")
    wait_until(_not_alive(gone), what="the agent to end")
    report = manager.reconcile(REMOVE0)
    assert _results(report) == [(Kind.REMOVE_RECORD, gone.id, "done")]
    assert [s.id for s in manager.store.list().sessions] == [keep.id]
    assert _sessions(tmux) == [f"amux-{keep.id}"]
    assert manager.reconcile(REMOVE0).actions == []


class ExitCase(NamedTuple):
    test_id: str
    code: int
    kind: Kind
    status: Status


EXITS = [
    ExitCase("exit0", 0, Kind.MARK_COMPLETED, Status.COMPLETED),
    ExitCase("exit3", 3, Kind.MARK_FAILED, Status.FAILED),
]


@pytest.mark.parametrize("case", EXITS, ids=[c.test_id for c in EXITS])
@pytest.mark.parametrize("remove", [False, True], ids=["mark", "remove"])
def test_exit_seen_only_by_reconcile(
    manager: Manager, store_id: str, case: ExitCase, remove: bool
) -> None:
    """A dead pane nobody recorded (no pane-died hook) is recorded with its exit code;
    --remove also tidies the dead pane, mark mode keeps it to be read."""
    tmux = _raw(manager)
    finish = _exiting_session(tmux, "exit01", store_id)
    _record_for(manager.store, tmux, "exit01")
    policy = Policy(remove=remove, grace=0)
    assert manager.reconcile(policy, dry_run=True).actions == []  # alive: nothing to do
    finish(case.code)
    wait_until(lambda: manager.reconcile(policy, dry_run=True).actions, what="the exit")
    report = manager.reconcile(policy)
    expected = [(case.kind, "exit01", "done")]
    if remove:
        expected.append((Kind.KILL_SESSION, "exit01", "done"))
    assert _results(report) == expected
    assert report.outcomes[0].action.exit_code == case.code
    final = manager.store.get("exit01")
    assert (final.status, final.exit_code) == (case.status, case.code)
    assert final.stopped_at is not None
    assert _sessions(tmux) == ([] if remove else ["amux-exit01"])
    assert manager.reconcile(policy).actions == []


def test_dead_pane_of_an_ended_record_is_tidied_by_remove(manager: Manager) -> None:
    """The pane-died hook recorded the exit; mark mode keeps the dead pane (nothing to
    say), --remove kills the session and leaves the record as the hook wrote it."""
    tmux = _raw(manager)
    session = _start(manager, "--prompt", "> ", "--exit", "3")
    # The agent ends (status 3) when its input ends, after start has recorded it running.
    tmux("send-keys", "-t", f"=amux-{session.id}:", "C-d")
    wait_until(_looked_ended(manager, session.id), what="the hook's mark")
    assert manager.store.get(session.id).status is Status.FAILED
    before = manager.store.get(session.id)
    assert before.exit_code == 3
    mark = manager.reconcile(MARK0)
    assert mark.actions == []
    assert _sessions(tmux) == [f"amux-{session.id}"]
    removed = manager.reconcile(REMOVE0)
    assert _results(removed) == [(Kind.KILL_SESSION, session.id, "done")]
    assert "tidy the dead pane" in removed.actions[0].reason
    assert _sessions(tmux) == []
    assert manager.store.get(session.id) == before


def test_stale_pid_marks_orphaned_once(manager: Manager) -> None:
    """A pane that runs another pid than recorded (and the recorded one is gone) is not
    this record's: marked orphaned, once."""
    session = _start(manager)
    manager.store.update(session.id, lambda s: s.evolve(pid=1))
    report = manager.reconcile(MARK0)
    assert _kinds(report) == [(Kind.MARK_ORPHANED, session.id)]
    assert "not the recorded pid 1" in report.actions[0].reason
    assert manager.store.get(session.id).status is Status.ORPHANED
    assert manager.reconcile(MARK0).actions == []


def test_reused_pid_is_detected(manager: Manager) -> None:
    """The recorded pid with another create time is a reused pid."""
    session = _start(manager)
    assert session.pid_create_time is not None
    ctime = session.pid_create_time - 1000
    manager.store.update(session.id, lambda s: s.evolve(pid_create_time=ctime))
    report = manager.reconcile(MARK0)
    assert _kinds(report) == [(Kind.MARK_ORPHANED, session.id)]
    assert "reused" in report.actions[0].reason


def test_remove_of_a_stale_record_removes_and_kills_in_one_run(manager: Manager) -> None:
    """--remove of a stale record deletes it AND kills the session it no longer owns, in
    the same run (the kill under the record's lock, re-judged there)."""
    tmux = _raw(manager)
    session = _start(manager)
    manager.store.update(session.id, lambda s: s.evolve(pid=1))
    first = manager.reconcile(REMOVE0)
    assert _results(first) == [
        (Kind.REMOVE_RECORD, session.id, "done"),
        (Kind.KILL_SESSION, session.id, "done"),
    ]
    assert _sessions(tmux) == []
    assert not manager.store.exists(session.id)
    assert manager.reconcile(REMOVE0).actions == []


# --- what users do to sessions and records ------------------------------------------------


@pytest.mark.parametrize("remove", [False, True], ids=["mark", "remove"])
def test_user_split_and_swapped_panes(manager: Manager, remove: bool) -> None:
    """The user split the agent's window and swapped the panes: the first pane tmux lists
    is the user's, the agent still runs. Nothing is marked, removed or killed."""
    tmux = _raw(manager)
    session = _start(manager)
    target = f"=amux-{session.id}:"
    assert tmux("split-window", "-t", target, *SLEEP).returncode == 0
    assert tmux("swap-pane", "-s", f"{target}.0", "-t", f"{target}.1").returncode == 0
    first = manager.backend.list_live().panes[f"amux-{session.id}"]
    assert first.pane_pid != session.pid  # the setup does what it says
    for _ in range(2):
        report = manager.reconcile(Policy(remove=remove, grace=0))
        assert (report.actions, report.outcomes) == ([], [])
    assert manager.store.get(session.id).status is Status.RUNNING
    assert _sessions(tmux) == [f"amux-{session.id}"]
    assert rc.is_alive(session, procs.facts(session.pid))  # type: ignore[arg-type]


@pytest.mark.parametrize("remove", [False, True], ids=["mark", "remove"])
def test_session_renamed_by_the_user(manager: Manager, remove: bool) -> None:
    """A renamed session is no longer amux's (foreign: never touched), but its agent runs:
    the record is reported every run, never orphaned or removed. Renamed back, all is well."""
    tmux = _raw(manager)
    session = _start(manager)
    policy = Policy(remove=remove, grace=0)
    assert tmux("rename-session", "-t", f"=amux-{session.id}", "my-work").returncode == 0
    for _ in range(2):
        report = manager.reconcile(policy)
        assert _results(report) == [(Kind.REPORT, session.id, "reported")]
        assert f"agent pid {session.pid} runs" in report.actions[0].reason
        assert report.foreign == 1
    assert manager.store.get(session.id).revision == session.revision
    assert _sessions(tmux) == ["my-work"]
    assert _orphan_tag(tmux, "my-work") == ""
    assert tmux("rename-session", "-t", "=my-work", f"amux-{session.id}").returncode == 0
    assert manager.reconcile(policy).actions == []


@pytest.mark.parametrize("edit", [None, "amux-zzz999", "''"], ids=["deleted", "other", "empty"])
def test_hand_edited_session_name_still_matches(manager: Manager, edit: str | None) -> None:
    """A person deleted or changed tmux_session in the record: the record's session is
    still amux-<id> (ownership says so), so a running agent is neither reported nor marked."""
    session = _start(manager)
    _edit(manager.store, session.id, "tmux_session", edit)
    manager.store.get(session.id)  # still a readable record
    for policy in (MARK0, REMOVE0):
        report = manager.reconcile(policy)
        assert (report.actions, report.problems) == ([], [])
    assert manager.store.get(session.id).status is Status.RUNNING


def test_hand_set_stopping_is_finished(manager: Manager) -> None:
    """A person wrote `status: Stopping` into a running record: reconcile finishes the stop."""
    tmux = _raw(manager)
    session = _start(manager)
    _edit(manager.store, session.id, "status", "Stopping")
    backdate(manager.store, session.id, OLD)
    report = manager.reconcile(MARK0)
    assert _results(report) == [
        (Kind.KILL_SESSION, session.id, "done"),
        (Kind.MARK_STOPPED, session.id, "done"),
    ]
    assert manager.store.get(session.id).status is Status.STOPPED
    assert _sessions(tmux) == []


# --- live sessions without a record, and bystanders ---------------------------------------


def test_session_without_record_tagged_then_killed(
    manager: Manager, store: FileStore, store_id: str, other_socket: str
) -> None:
    """An owned session without record is tagged, then killed by --remove. Bystanders
    survive both untouched: a user's amux-foo, a name/id mismatch, another store's
    session, a legacy one without store tag, and anything on a socket no record names."""
    tmux = _raw(manager)
    ours = owned_session(tmux, "mine01", store_id)
    tmux("new-session", "-d", "-s", "amux-foo", *SLEEP)
    owned_session(tmux, "abc123", store_id, name="amux-zzz999")
    owned_session(tmux, "oth001", OTHER_STORE)
    owned_session(tmux, "leg001", None)
    other = tmux_runner(other_socket)
    os.makedirs(os.path.dirname(other_socket), exist_ok=True)
    owned_session(other, "far001", store_id)
    bystanders = ["amux-foo", "amux-leg001", "amux-oth001", "amux-zzz999"]

    mark = manager.reconcile(MARK0)
    assert _results(mark) == [(Kind.TAG_SESSION, "mine01", "done")]
    assert (mark.actions[0].tmux_session, mark.actions[0].tmux_session_id) == (
        "amux-mine01",
        ours,
    )
    assert mark.foreign == 4
    assert _orphan_tag(tmux, "amux-mine01") == "1"
    assert [_orphan_tag(tmux, n) for n in bystanders] == ["", "", "", ""]
    assert manager.reconcile(MARK0).actions == []  # already tagged

    removed = manager.reconcile(REMOVE0)
    assert _results(removed) == [(Kind.KILL_SESSION, "mine01", "done")]
    assert _sessions(tmux) == bystanders
    assert manager.reconcile(REMOVE0).actions == []
    assert _sessions(other) == ["amux-far001"]  # never looked at
    assert _orphan_tag(other, "amux-far001") == ""


def test_grace_protects_young_records_and_sessions(
    manager: Manager, store: FileStore, store_id: str
) -> None:
    """Nothing younger than the grace period is acted on, in either mode."""
    tmux = _raw(manager)
    make_record(store, "young1", manager.backend.socket_path)
    owned_session(tmux, "young2", store_id)
    for remove in (False, True):
        assert manager.reconcile(Policy(remove=remove, grace=30)).actions == []
    assert store.get("young1").revision == 1
    assert _orphan_tag(tmux, "amux-young2") == ""
    report = manager.reconcile(MARK0)
    assert sorted(_kinds(report)) == [(Kind.MARK_ORPHANED, "young1"), (Kind.TAG_SESSION, "young2")]


# --- starts that never finished, stops that were interrupted, sessions that came back -----


def test_starting_record_young_untouched_old_failed(manager: Manager, store: FileStore) -> None:
    """A start within the grace period is left alone; past it, the record fails."""
    make_record(store, "start1", manager.backend.socket_path, Status.STARTING)
    policy = Policy(remove=True, grace=30)
    assert manager.reconcile(policy).actions == []
    assert store.get("start1").status is Status.STARTING
    backdate(store, "start1", 120)
    report = manager.reconcile(policy)
    assert _results(report) == [(Kind.MARK_FAILED, "start1", "done")]
    final = store.get("start1")
    assert final.status is Status.FAILED
    assert "starting" in (final.error or "")
    assert manager.reconcile(policy).actions == []


def test_expired_start_with_live_session_reported_then_killed(
    manager: Manager, store: FileStore, store_id: str
) -> None:
    """An expired `starting` whose owned session runs: mark mode fails the record and
    reports the session (every run); --remove then kills it. Another such record under
    --remove straight away: killed first, then failed."""
    tmux = _raw(manager)
    tmux("new-session", "-d", "-s", "work", *SLEEP)  # keeps the server up throughout
    for sid in ("strt01", "strt02"):
        owned_session(tmux, sid, store_id)
        make_record(store, sid, manager.backend.socket_path, Status.STARTING)
        backdate(store, sid, 120)

    first = manager.reconcile(Policy(remove=False, grace=30))
    assert sorted(_results(first)) == sorted(
        [
            (Kind.MARK_FAILED, "strt01", "done"),
            (Kind.REPORT, "strt01", "reported"),
            (Kind.MARK_FAILED, "strt02", "done"),
            (Kind.REPORT, "strt02", "reported"),
        ]
    )
    assert _sessions(tmux) == ["amux-strt01", "amux-strt02", "work"]
    again = manager.reconcile(MARK0)
    assert _results(again) == [
        (Kind.REPORT, "strt01", "reported"),
        (Kind.REPORT, "strt02", "reported"),
    ]
    assert "failed but its agent still runs" in again.actions[0].reason
    assert _sessions(tmux) == ["amux-strt01", "amux-strt02", "work"]

    removed = manager.reconcile(REMOVE0)
    assert _results(removed) == [
        (Kind.KILL_SESSION, "strt01", "done"),
        (Kind.KILL_SESSION, "strt02", "done"),
    ]
    assert _sessions(tmux) == ["work"]
    assert [store.get(s).status for s in ("strt01", "strt02")] == [Status.FAILED] * 2

    owned_session(tmux, "strt03", store_id)
    make_record(store, "strt03", manager.backend.socket_path, Status.STARTING)
    backdate(store, "strt03", 120)
    straight = manager.reconcile(Policy(remove=True, grace=30))
    assert _results(straight) == [
        (Kind.KILL_SESSION, "strt03", "done"),
        (Kind.MARK_FAILED, "strt03", "done"),
    ]
    assert _sessions(tmux) == ["work"]
    assert store.get("strt03").status is Status.FAILED


@pytest.mark.parametrize("remove", [False, True], ids=["mark", "remove"])
def test_failed_record_with_live_session(
    manager: Manager, store: FileStore, store_id: str, remove: bool
) -> None:
    """A `failed` record whose owned session runs (a start that timed out while tmux was
    slow): mark mode reports it on every run and changes nothing; --remove kills it."""
    tmux = _raw(manager)
    owned_session(tmux, "fail01", store_id)
    make_record(store, "fail01", manager.backend.socket_path, Status.FAILED)
    before = _files(store)
    report = manager.reconcile(Policy(remove=remove, grace=30))  # no grace for ended records
    if remove:
        assert _results(report) == [(Kind.KILL_SESSION, "fail01", "done")]
        assert _sessions(tmux) == []
    else:
        assert _results(report) == [(Kind.REPORT, "fail01", "reported")]
        assert _results(manager.reconcile(MARK0)) == [(Kind.REPORT, "fail01", "reported")]
        assert _sessions(tmux) == ["amux-fail01"]
        assert _orphan_tag(tmux, "amux-fail01") == ""
    assert _files(store) == before


@pytest.mark.parametrize("remove", [False, True], ids=["mark", "remove"])
def test_interrupted_stop_is_finished(
    manager: Manager, store: FileStore, store_id: str, remove: bool
) -> None:
    """A `stopping` left by an interrupted stop: its session is killed and the record
    stopped, in either mode; one whose agent had exited keeps the exit code; one whose
    session is already gone is just marked stopped."""
    tmux = _raw(manager)
    owned_session(tmux, "stop01", store_id)
    _record_for(store, tmux, "stop01", Status.STOPPING)
    finish = _exiting_session(tmux, "stop02", store_id)
    _record_for(store, tmux, "stop02", Status.STOPPING)
    make_record(store, "stop03", manager.backend.socket_path, Status.STOPPING)
    backdate(store, "stop03", OLD)
    finish(7)
    policy = Policy(remove=remove, grace=0)
    wait_until(
        lambda: any(
            a.session_id == "stop02" and a.exit_code == 7
            for a in manager.reconcile(policy, dry_run=True).actions
        ),
        what="the exit of stop02",
    )
    report = manager.reconcile(policy)
    assert sorted(_results(report)) == sorted(
        [
            (Kind.KILL_SESSION, "stop01", "done"),
            (Kind.MARK_STOPPED, "stop01", "done"),
            (Kind.KILL_SESSION, "stop02", "done"),
            (Kind.MARK_STOPPED, "stop02", "done"),
            (Kind.MARK_STOPPED, "stop03", "done"),
        ]
    )
    assert _sessions(tmux) == []
    finals = {sid: store.get(sid) for sid in ("stop01", "stop02", "stop03")}
    assert {s.status for s in finals.values()} == {Status.STOPPED}
    assert [finals[s].exit_code for s in ("stop01", "stop02", "stop03")] == [None, 7, None]
    assert all(s.stopped_at for s in finals.values())
    assert manager.reconcile(policy).actions == []


def test_hook_records_an_interrupted_stop_as_stopped(manager: Manager) -> None:
    """A stop interrupted after TERM: when the agent dies, the pane-died hook finishes
    the stop (stopped, not failed by signal 15)."""
    session = _start(manager)
    manager.store.update(session.id, lambda s: s.transition(Status.STOPPING))
    assert session.pid is not None
    os.kill(session.pid, signal.SIGTERM)
    wait_until(_looked_ended(manager, session.id), timeout=20, what="the hook's mark")
    assert manager.store.get(session.id).status is Status.STOPPED


def test_orphaned_record_whose_session_is_back_runs_again(
    manager: Manager, store: FileStore, store_id: str
) -> None:
    """An orphaned record whose session turned up again (a socket restored) is running."""
    tmux = _raw(manager)
    owned_session(tmux, "back01", store_id)
    _record_for(store, tmux, "back01", Status.ORPHANED, error="was gone")
    report = manager.reconcile(MARK0)
    assert _results(report) == [(Kind.MARK_RUNNING, "back01", "done")]
    final = store.get("back01")
    assert (final.status, final.error) == (Status.RUNNING, None)
    assert manager.reconcile(MARK0).actions == []


@pytest.mark.parametrize("remove", [False, True], ids=["mark", "remove"])
def test_alive_pid_without_session_is_reported_not_orphaned(
    manager: Manager, store: FileStore, remove: bool
) -> None:
    """The recorded agent pid runs (same create time) but no session of ours shows it:
    reported every run, never orphaned or removed; once the process is gone, it is.
    (With no server at all, that would be a socket file removed: see below.)"""
    _raw(manager)("new-session", "-d", "-s", "user", *SLEEP)
    agent = subprocess.Popen(list(SLEEP))
    try:
        make_record(
            store,
            "alive1",
            manager.backend.socket_path,
            pid=agent.pid,
            pid_create_time=procs.facts(agent.pid).create_time,
        )
        backdate(store, "alive1", OLD)
        before = _files(store)
        policy = Policy(remove=remove, grace=0)
        for _ in range(2):
            report = manager.reconcile(policy)
            assert _results(report) == [(Kind.REPORT, "alive1", "reported")], report
            assert f"pid {agent.pid} runs" in report.actions[0].reason
        assert _files(store) == before
    finally:
        agent.kill()
        agent.wait()
    after = manager.reconcile(Policy(remove=remove, grace=0))
    kind = Kind.REMOVE_RECORD if remove else Kind.MARK_ORPHANED
    assert _results(after) == [(kind, "alive1", "done")]


# --- apply: locks, re-judgement, failures -------------------------------------------------


def test_apply_skips_what_changed_between_plan_and_apply(
    manager: Manager, store: FileStore, store_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the plan and apply's fresh look: a record appeared for an ownerless session,
    a session was replaced under the same name, a record was stopped by hand, another
    deleted. Every action is skipped (not failed) and nothing is changed."""
    tmux = _raw(manager)
    sock = manager.backend.socket_path
    owned_session(tmux, "late01", store_id)
    owned_session(tmux, "swap01", store_id)
    for sid in ("gone01", "gone02"):
        make_record(store, sid, sock)
        backdate(store, sid, OLD)
    planned = manager.reconcile(REMOVE0, dry_run=True).actions
    assert sorted(_kinds_of(planned)) == [
        (Kind.KILL_SESSION, "late01"),
        (Kind.KILL_SESSION, "swap01"),
        (Kind.REMOVE_RECORD, "gone01"),
        (Kind.REMOVE_RECORD, "gone02"),
    ]

    def change() -> None:
        make_record(store, "late01", sock)  # its start just finished
        tmux("kill-session", "-t", "=amux-swap01")
        owned_session(tmux, "swap01", store_id)  # same name, new $id
        store.update("gone01", lambda s: s.transition(Status.STOPPED))
        store.delete("gone02")

    _between_plan_and_apply(monkeypatch, manager, change)
    report = manager.reconcile(REMOVE0)
    assert _kinds(report) == _kinds_of(planned)
    assert {o.to_dict()["result"] for o in report.outcomes} == {"skipped"}
    assert report.failed == []
    assert _sessions(tmux) == ["amux-late01", "amux-swap01"]
    assert store.get("gone01").status is Status.STOPPED
    assert store.get("late01").status is Status.RUNNING


def _kinds_of(actions: Sequence[rc.Action]) -> list[tuple[Kind, str]]:
    return [(a.kind, a.session_id) for a in actions]


def test_marks_are_rejudged_under_the_record_lock(manager: Manager, store: FileStore) -> None:
    """A mark waits for the record's lock and re-reads the record there: a stop that
    finished while holding the lock is not overwritten with `orphaned`."""
    make_record(store, "wait01", manager.backend.socket_path)
    backdate(store, "wait01", OLD)
    done: list[ReconcileReport] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            done.append(manager.reconcile(MARK0))
        except BaseException as err:  # re-raised below
            errors.append(err)

    thread = threading.Thread(target=run)
    with _hold_flock(store.lock_path("wait01")):
        thread.start()
        wait_until(lambda: manager.backend.calls >= 2, what="the plan and the fresh look")
        _edit(store, "wait01", "status", "stopped")  # what the lock holder wrote
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert errors == []
    [report] = done
    assert _results(report) == [(Kind.MARK_ORPHANED, "wait01", "skipped")]
    assert store.get("wait01").status is Status.STOPPED


def test_locked_record_fails_alone(manager: Manager, store: FileStore) -> None:
    """An action whose record lock stays held fails (with why); the others still run."""
    store.lock_timeout = 0.2
    for sid in ("lock01", "lock02"):
        make_record(store, sid, manager.backend.socket_path)
        backdate(store, sid, OLD)
    with _hold_flock(store.lock_path("lock01")):
        report = manager.reconcile(MARK0)
    assert sorted(_results(report)) == [
        (Kind.MARK_ORPHANED, "lock01", "failed"),
        (Kind.MARK_ORPHANED, "lock02", "done"),
    ]
    [failed] = report.failed
    assert "locked" in failed.detail
    assert store.get("lock01").status is Status.RUNNING
    assert store.get("lock02").status is Status.ORPHANED
    retry = manager.reconcile(MARK0)
    assert _results(retry) == [(Kind.MARK_ORPHANED, "lock01", "done")]


def test_os_error_in_one_removal_does_not_stop_the_others(
    manager: Manager, store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One record that cannot be deleted (read-only file system) fails alone."""
    for sid in ("ro0001", "ro0002"):
        make_record(store, sid, manager.backend.socket_path)
    real_delete = store.delete

    def delete(sid: str, check: Callable[[Session], None] | None = None) -> Session:
        if sid == "ro0001":
            raise PermissionError(13, "Permission denied", str(store.path_for(sid)))
        return real_delete(sid, check)

    monkeypatch.setattr(store, "delete", delete)
    report = manager.reconcile(REMOVE0)
    assert _results(report) == [
        (Kind.REMOVE_RECORD, "ro0001", "failed"),
        (Kind.REMOVE_RECORD, "ro0002", "done"),
    ]
    assert "Permission denied" in report.failed[0].detail
    assert store.exists("ro0001")
    assert not store.exists("ro0002")


def test_a_failed_kill_keeps_its_record_and_stops_nothing_else(
    manager: Manager, store: FileStore, store_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One kill of a batch fails (its session vanished just before): that record keeps
    its status ("not done"), the other stop is finished; the next run finishes the first."""
    tmux = _raw(manager)
    first, _ = [
        (owned_session(tmux, sid, store_id), _record_for(store, tmux, sid, Status.STOPPING))[1]
        for sid in ("kill01", "kill02")
    ]
    real_batch = manager.backend.batch

    def batch(commands: Sequence[Sequence[str]], **kw: Any) -> Any:
        tmux("kill-session", "-t", "=amux-kill01")
        return real_batch(commands, **kw)

    monkeypatch.setattr(manager.backend, "batch", batch)
    report = manager.reconcile(MARK0)
    results = dict(((o.action.kind, o.action.session_id), o) for o in report.outcomes)
    assert results[(Kind.KILL_SESSION, "kill01")].failed
    stopped = results[(Kind.MARK_STOPPED, "kill01")]
    assert stopped.failed
    assert stopped.detail.startswith("not done:")
    assert results[(Kind.KILL_SESSION, "kill02")].done
    assert results[(Kind.MARK_STOPPED, "kill02")].done
    assert store.get("kill01").status is Status.STOPPING
    assert store.get("kill02").status is Status.STOPPED
    monkeypatch.undo()
    wait_until(_not_alive(first), what="the agent of the killed session to end")
    retry = manager.reconcile(MARK0)
    assert _results(retry) == [(Kind.MARK_STOPPED, "kill01", "done")]


def test_tied_kills_happen_while_the_record_locks_are_held(
    manager: Manager, store: FileStore, store_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When tmux is asked to kill the sessions of records, each record's lock is held
    (so no start, stop or restart can act between the judgement and the kill); kills of
    sessions without a record need no lock. All locks are free afterwards."""
    tmux = _raw(manager)
    tied = ["tied01", "tied02", "tied03"]
    for sid in tied:
        owned_session(tmux, sid, store_id)
        _record_for(store, tmux, sid, Status.STOPPING)
    owned_session(tmux, "free01", store_id)
    seen: dict[str, bool] = {}
    real_batch = manager.backend.batch

    def batch(commands: Sequence[Sequence[str]], **kw: Any) -> Any:
        for sid in [*tied, "free01"]:
            seen[sid] = _is_locked(store.lock_path(sid))
        return real_batch(commands, **kw)

    monkeypatch.setattr(manager.backend, "batch", batch)
    report = manager.reconcile(REMOVE0)
    assert all(o.done for o in report.outcomes)
    assert seen == {"tied01": True, "tied02": True, "tied03": True, "free01": False}
    assert not any(_is_locked(store.lock_path(sid)) for sid in tied)
    assert _sessions(tmux) == []
    assert {store.get(sid).status for sid in tied} == {Status.STOPPED}


def test_500_tags_and_500_kills_take_at_most_6_tmux_processes(
    manager: Manager, store: FileStore, store_id: str
) -> None:
    """Whatever the number of actions, a run is a few tmux processes: the listing, the
    fresh look and batches (record-tied kills in chunks of MAX_LOCKS_HELD locks)."""
    tmux = _raw(manager)
    n = 500
    tied = [f"t{i:05d}" for i in range(n // 2)]
    free = [f"f{i:05d}" for i in range(n // 2)]
    script = manager.store.root / "sessions.tmux"
    lines = []
    for sid in [*tied, *free]:
        lines += [
            f"new-session -d -s amux-{sid} sleep 600",
            f"set-option -t =amux-{sid}: @amux_id {sid}",
            f"set-option -t =amux-{sid}: @amux_store {store_id}",
        ]
    script.write_text("\n".join(lines) + "\n")
    made = tmux("start-server", ";", "source-file", str(script))
    assert made.returncode == 0, made.stderr
    old = "2026-01-01T00:00:00.000000Z"
    store.ensure_dirs()
    for sid in tied:  # ended records whose sessions still run; written without fsync
        record = Session(
            sid, Status.FAILED, old, old, tmux_socket=manager.backend.socket_path, revision=1
        )
        store.path_for(sid).write_bytes(codec.encode(record.to_dict()))
    assert len(manager.backend.list_live().panes) == n

    mark = manager.reconcile(MARK0)
    assert Counter((kind, result) for kind, _, result in _results(mark)) == {
        (Kind.REPORT, "reported"): n // 2,
        (Kind.TAG_SESSION, "done"): n // 2,
    }
    assert mark.tmux_calls <= 6
    tags = tmux("list-sessions", "-F", "#{session_name} #{@amux_orphan}").stdout.split("\n")
    assert sorted(t for t in tags if t.endswith(" 1")) == sorted(f"amux-{s} 1" for s in free)

    removed = manager.reconcile(REMOVE0)
    assert Counter((kind, result) for kind, _, result in _results(removed)) == {
        (Kind.KILL_SESSION, "done"): n
    }
    assert n // 2 > rc.MAX_LOCKS_HELD  # the tied kills needed more than one batch
    assert removed.tmux_calls <= 6
    assert _sessions(tmux) == []


# --- servers that cannot be asked, or die -------------------------------------------------


def test_server_killed_between_plan_and_apply(
    manager: Manager, store: FileStore, store_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server dies after the plan: planned tmux changes are skipped, marks are
    re-judged against the empty world, nothing raises."""
    tmux = _raw(manager)
    owned_session(tmux, "live01", store_id)
    live = _record_for(store, tmux, "live01")
    owned_session(tmux, "free01", store_id)
    make_record(store, "gone01", manager.backend.socket_path)
    backdate(store, "gone01", OLD)

    def die() -> None:
        kill_server(manager.backend.socket_path)
        wait_until(_not_alive(live), what="the agent to die with its server")

    _between_plan_and_apply(monkeypatch, manager, die)
    report = manager.reconcile(MARK0)
    assert _results(report) == [
        (Kind.MARK_ORPHANED, "gone01", "done"),
        (Kind.TAG_SESSION, "free01", "skipped"),
    ]
    assert store.get("live01").status is Status.RUNNING  # not planned: the next run's


@contextlib.contextmanager
def _socket_file_removed(manager: Manager, agent_pid: int) -> Iterator[None]:
    """Remove the socket file while the server runs (a tmp cleaner); restore it after
    with SIGUSR1, so the server can be asked, and killed, again."""
    path = pathlib.Path(manager.backend.socket_path)
    server = procs.parent_of(agent_pid)
    assert server is not None
    path.unlink()
    try:
        yield
    finally:
        os.kill(server, signal.SIGUSR1)
        wait_until(path.exists, what="tmux to recreate its socket")


def test_socket_file_removed_while_agents_run_changes_nothing(
    manager: Manager, store: FileStore
) -> None:
    """ "No server" while a recorded agent runs means tmux cannot be asked: the socket is
    reported unreachable and no record is changed, in either mode."""
    session = _start(manager)
    make_record(store, "gone01", manager.backend.socket_path)
    backdate(store, "gone01", OLD)
    before = _files(store)
    assert session.pid is not None
    with _socket_file_removed(manager, session.pid):
        for policy in (REMOVE0, MARK0):
            report = manager.reconcile(policy)
            assert report.actions == []
            [why] = report.unreachable.values()
            assert f"agent pid {session.pid}" in why
            assert _files(store) == before
    assert _kinds(manager.reconcile(REMOVE0)) == [(Kind.REMOVE_RECORD, "gone01")]


def test_socket_lost_mid_run_fails_its_actions_and_others_go_on(
    manager: Manager,
    store: FileStore,
    store_id: str,
    other_socket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The socket file vanishes between the plan and apply while an agent runs: that
    server's actions fail (nothing changed there), and the next socket is still done."""
    tmux = _raw(manager)
    session = _start(manager)
    owned_session(tmux, "free01", store_id)
    make_record(store, "gone01", manager.backend.socket_path)
    backdate(store, "gone01", OLD)
    make_record(store, "far001", other_socket)  # no server there at all
    backdate(store, "far001", OLD)
    assert session.pid is not None
    with contextlib.ExitStack() as stack:
        _between_plan_and_apply(
            monkeypatch,
            manager,
            lambda: stack.enter_context(_socket_file_removed(manager, session.pid)),  # type: ignore[arg-type]
        )
        report = manager.reconcile(MARK0)
    monkeypatch.undo()
    results = {(o.action.kind, o.action.session_id): o for o in report.outcomes}
    assert set(results) == {
        (Kind.MARK_ORPHANED, "gone01"),
        (Kind.TAG_SESSION, "free01"),
        (Kind.MARK_ORPHANED, "far001"),
    }
    for key in [(Kind.MARK_ORPHANED, "gone01"), (Kind.TAG_SESSION, "free01")]:
        assert results[key].failed
        assert "could not be asked again" in results[key].detail
    assert results[(Kind.MARK_ORPHANED, "far001")].done
    assert store.get("gone01").status is Status.RUNNING
    assert _orphan_tag(tmux, "amux-free01") == ""
    assert store.get("far001").status is Status.ORPHANED


def test_unreachable_tmux_changes_nothing(
    store: FileStore, tmp_path: pathlib.Path, socket_name: str
) -> None:
    """tmux answering with an error (not "no server"): the socket is unreachable, its
    records untouched, in every mode; nothing raises."""
    fake = tmp_path / "bin" / "tmux"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'error connecting to x (Permission denied)' >&2\nexit 1\n")
    fake.chmod(0o755)
    manager = Manager(store, socket=socket_name, tmux_bin=str(fake))
    path = manager.backend.socket_path
    make_record(store, "unr001", path)
    make_record(store, "unr002", path, Status.STARTING)
    for sid in ("unr001", "unr002"):
        backdate(store, sid, OLD)
    before = _files(store)
    for dry_run in (False, True):
        for policy in (MARK0, REMOVE0):
            report = manager.reconcile(policy, dry_run=dry_run)
            assert report.actions == []
            assert list(report.unreachable) == [path]
            assert "Permission denied" in report.unreachable[path]
    assert _files(store) == before


def test_no_server_is_an_empty_world(manager: Manager, store: FileStore) -> None:
    """No tmux server at all (and no recorded agent alive): records are orphaned."""
    make_record(store, "nosrv1", manager.backend.socket_path)
    report = manager.reconcile(MARK0)
    assert _results(report) == [(Kind.MARK_ORPHANED, "nosrv1", "done")]
    assert report.unreachable == {}
    assert report.tmux_calls == 2


def test_records_on_a_second_socket_are_visited(
    manager: Manager, store: FileStore, store_id: str, other_socket: str
) -> None:
    """Every socket a record names is visited: its records and its owned sessions."""
    other = tmux_runner(other_socket)
    os.makedirs(os.path.dirname(other_socket), exist_ok=True)
    owned_session(other, "far001", store_id)
    make_record(store, "far002", other_socket)
    backdate(store, "far002", OLD)
    report = manager.reconcile(MARK0)
    assert sorted(_results(report)) == [
        (Kind.MARK_ORPHANED, "far002", "done"),
        (Kind.TAG_SESSION, "far001", "done"),
    ]
    assert _orphan_tag(other, "amux-far001") == "1"
    assert store.get("far002").status is Status.ORPHANED


def test_store_without_id_touches_nothing(
    tmp_path: pathlib.Path, socket_name: str, manager: Manager
) -> None:
    """A tree without .amux/: reconcile owns nothing, asks tmux nothing, creates nothing."""
    tmux = _raw(manager)
    owned_session(tmux, "some01", "somest0re")
    bare = tmp_path / "bare"
    bare.mkdir()
    lonely = Manager(FileStore(bare), socket=socket_name)
    for policy in (MARK0, REMOVE0):
        report = lonely.reconcile(policy)
        assert (report.actions, report.tmux_calls) == ([], 0)
    assert list(bare.iterdir()) == []
    assert _sessions(tmux) == ["amux-some01"]


# --- records that cannot be read ----------------------------------------------------------


@pytest.mark.parametrize("line", ["status: 12", "command: {a: b}"], ids=["status", "command"])
def test_unreadable_record_protects_its_session_and_is_reported_every_run(
    manager: Manager, store: FileStore, store_id: str, line: str
) -> None:
    """A record that is YAML but breaks the schema stays in place, protects its owned
    session from both modes, and is a problem in every report."""
    tmux = _raw(manager)
    owned_session(tmux, "bad001", store_id)
    make_record(store, "bad001", manager.backend.socket_path)
    key, value = line.split(": ", 1)
    _edit(store, "bad001", key, value)
    backdate(store, "bad001", OLD)
    before = _files(store)
    for policy in (MARK0, REMOVE0, MARK0, REMOVE0):
        report = manager.reconcile(policy)
        assert report.actions == []
        [problem] = report.problems
        assert problem.session_id == "bad001"
        assert key in problem.why
    assert _sessions(tmux) == ["amux-bad001"]
    assert _orphan_tag(tmux, "amux-bad001") == ""
    assert _files(store) == before


# --- one at a time; races with a start ----------------------------------------------------


def test_reconcile_lock_is_exclusive(manager: Manager, store: FileStore) -> None:
    """A second reconcile while one holds the lock gets LockTimeout; a dry run takes none
    and changes nothing."""
    make_record(store, "busy01", manager.backend.socket_path)
    with _hold_flock(store.lock_path("_reconcile")):
        with pytest.raises(exc.LockTimeout):
            manager.reconcile(MARK0)
        dry = manager.reconcile(MARK0, dry_run=True)
    assert _kinds(dry) == [(Kind.MARK_ORPHANED, "busy01")]
    assert (dry.outcomes, dry.tmux_calls) == ([], 1)
    assert store.get("busy01").status is Status.RUNNING


def test_reconcile_racing_starts_never_touches_them(manager: Manager) -> None:
    """--remove --grace 0 in a loop while agents start: every start ends running with
    its session alive (a record is written before its session, and every change is
    re-judged under the record's lock)."""
    stop = threading.Event()
    reports: list[ReconcileReport] = []
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            while not stop.is_set():
                reports.append(other.reconcile(REMOVE0))
        except BaseException as err:  # re-raised below
            errors.append(err)

    # Another process's view: its own store object and manager on the same root.
    other = Manager(FileStore(manager.store.root), socket=manager.backend.socket_path)
    thread = threading.Thread(target=loop)
    thread.start()
    try:
        started = [_start(manager) for _ in range(4)]
    finally:
        stop.set()
        thread.join(timeout=60)
    assert errors == []
    assert len(reports) >= 2
    assert all(not o.done for r in reports for o in r.outcomes), [r.outcomes for r in reports]
    tmux = _raw(manager)
    assert _sessions(tmux) == sorted(f"amux-{s.id}" for s in started)
    for s in started:
        assert manager.store.get(s.id).status is Status.RUNNING
    assert manager.reconcile(REMOVE0).actions == []


# --- settle: what a look at one session records -------------------------------------------


def test_settle_records_only_marks(manager: Manager, store: FileStore, store_id: str) -> None:
    """settle (every command's look) records an exit at once, ignoring the grace period,
    and never kills: a young interrupted stop whose agent exited becomes stopped with
    its code and the dead pane stays."""
    tmux = _raw(manager)
    finish = _exiting_session(tmux, "look01", store_id)
    record = _record_for(store, tmux, "look01", Status.STOPPING, age=0)
    finish(5)

    def dead() -> Any:
        pane = manager._listing(manager.backend, [record]).get("amux-look01")
        return pane if pane is not None and pane.pane_dead_status is not None else None

    pane = wait_until(dead, what="the exit")
    effects = manager._effects(manager.backend, lambda: {"amux-look01": pane})
    settled = rc.settle(record, pane, effects, procs.facts(record.pid or 0), grace=30)  # type: ignore[arg-type]
    assert (settled.status, settled.exit_code) == (Status.STOPPED, 5)
    assert _sessions(tmux) == ["amux-look01"]
    assert rc.settle(settled, pane, effects, procs.facts(1), grace=30) == settled


# --- what an outsider does: copies, symlinks, hung servers, hostile files ------------------------


def test_a_hostile_record_in_quarantine_still_protects_its_session(
    manager: Manager, store: FileStore, store_id: str
) -> None:
    """A record file that is not YAML is moved to quarantine; the id in its name keeps
    the owned session safe from both modes, on every run."""
    tmux = _raw(manager)
    owned_session(tmux, "hos001", store_id)
    make_record(store, "hos001", manager.backend.socket_path)
    store.path_for("hos001").write_bytes(b"id: hos001\nstatus: [unclosed\n\x00\x01\x02")
    for policy in (REMOVE0, MARK0, REMOVE0):
        report = manager.reconcile(policy)
        assert report.actions == []
        [problem] = report.problems
        assert problem.session_id == "hos001"
        assert problem.quarantined_to is not None
    assert not store.path_for("hos001").exists()
    assert _sessions(tmux) == ["amux-hos001"]
    assert _orphan_tag(tmux, "amux-hos001") == ""


def test_a_hung_server_is_unreachable_and_nothing_changes(
    store: FileStore, socket_name: str, manager: Manager
) -> None:
    """A tmux server that stops answering (SIGSTOP, or out of file descriptors) is not an
    empty one: every call is bounded, the socket is reported, no record changes."""
    session = _start(manager)
    make_record(store, "gone01", manager.backend.socket_path)
    backdate(store, "gone01", OLD)
    before = _files(store)
    assert session.pid is not None
    server = procs.parent_of(session.pid)
    assert server is not None
    quick = Manager(store, socket=socket_name, tmux_timeout=0.5)
    os.kill(server, signal.SIGSTOP)
    try:
        report = quick.reconcile(REMOVE0)
    finally:
        os.kill(server, signal.SIGCONT)
    assert report.actions == []
    assert list(report.unreachable) == [manager.backend.socket_path]
    assert _files(store) == before


def test_a_server_that_hangs_between_plan_and_apply_fails_its_actions(
    store: FileStore, socket_name: str, manager: Manager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server stops answering after the plan: apply's fresh look times out, the
    actions fail (exit 1 for cron), nothing is changed."""
    session = _start(manager)
    make_record(store, "gone01", manager.backend.socket_path)
    backdate(store, "gone01", OLD)
    before = _files(store)
    assert session.pid is not None
    server = procs.parent_of(session.pid)
    assert server is not None
    quick = Manager(store, socket=socket_name, tmux_timeout=0.5)
    _between_plan_and_apply(monkeypatch, quick, lambda: os.kill(server, signal.SIGSTOP))
    try:
        report = quick.reconcile(MARK0)
    finally:
        os.kill(server, signal.SIGCONT)
    [failed] = report.failed
    assert failed.action.session_id == "gone01"
    assert "could not be asked again" in failed.detail
    assert _files(store) == before


def test_a_copied_project_does_not_own_the_originals_sessions(
    manager: Manager, store: FileStore, socket_name: str, tmp_path: pathlib.Path
) -> None:
    """`cp -r project copy` copies .amux/ and its store id. The copy's cron must not
    tag or kill agents the original starts afterwards: they were never the copy's.
    (It did until 9f6c187 bound the store id to its directory.)
    """
    tmux = _raw(manager)
    _start(manager)
    copy = tmp_path / "copy"
    shutil.copytree(store.amux_dir, copy / ".amux", symlinks=True)
    later = _start(manager)
    copied = Manager(FileStore(copy), socket=socket_name)
    for policy in (MARK0, REMOVE0):
        report = copied.reconcile(policy)
        assert [a for a in report.actions if a.session_id == later.id] == []
    assert f"amux-{later.id}" in _sessions(tmux)
    assert _orphan_tag(tmux, f"amux-{later.id}") == ""


def test_one_server_reached_by_two_paths_is_not_judged_without_its_records(
    store: FileStore, tmp_path: pathlib.Path
) -> None:
    """Records name the server by one path (a symlinked directory), reconcile's --socket
    by another. The sessions of those records are not ownerless: no kill or tag is
    planned (a dry run must not say it would kill a running agent), none is 'skipped'.

    Fails today: Manager.reconcile plans each socket path with only the records that
    name that exact string, so the other path's listing sees every session ownerless.
    """
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    by_link = Manager(store, socket=str(tmp_path / "link" / "s"))
    try:
        session = _start(by_link)
        assert session.tmux_socket == by_link.backend.socket_path
        by_real = Manager(store, socket=str(real / "s"))
        for policy in (MARK0, REMOVE0):
            assert by_real.reconcile(policy, dry_run=True).actions == []
            report = by_real.reconcile(policy)
            assert (report.actions, report.outcomes) == ([], [])
        assert _sessions(tmux_runner(str(real / "s"))) == [f"amux-{session.id}"]
    finally:
        kill_server(str(real / "s"))


def test_a_batch_after_the_server_restarted_kills_nothing_of_the_new_one(
    manager: Manager, store: FileStore, store_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server dies after apply's fresh look and someone else's start brings up a new
    one at once; session $ids start again at $0 there. The batch must not kill the
    newcomer that now holds the $id planned for a session of the dead server.

    The batch starts by checking the server's pid against the listing's.
    """
    tmux = _raw(manager)
    planned = owned_session(tmux, "free01", store_id)
    assert planned == "$0"
    real_batch = manager.backend.batch

    def restart_then_batch(commands: Sequence[Sequence[str]], **kw: Any) -> Any:
        kill_server(manager.backend.socket_path)
        assert tmux("new-session", "-d", "-s", "victim", *SLEEP).returncode == 0
        assert tmux("display-message", "-p", "-t", "=victim:", "#{session_id}").stdout == "$0\n"
        return real_batch(commands, **kw)

    monkeypatch.setattr(manager.backend, "batch", restart_then_batch)
    report = manager.reconcile(REMOVE0)
    assert _kinds(report) == [(Kind.KILL_SESSION, "free01")]
    assert _sessions(tmux) == ["victim"]


def test_the_hook_rereads_a_record_whose_start_finishes_meanwhile(
    manager: Manager, store: FileStore, store_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pane-died hook fires while `start` still holds a `starting` record (an agent
    that exits at once); start then writes `running`. The hook retries for a while: it
    must judge the record as it is now and record the exit.

    (Seen as ~1 in 15 `start -- agent --exit 3` staying `running` until ba04252:
    Manager.settle_pane read the record once and re-judged that stale `starting` copy
    on every retry, so the exit was never recorded.)
    """
    tmux = _raw(manager)
    finish = _exiting_session(tmux, "hook01", store_id)
    make_record(store, "hook01", manager.backend.socket_path, Status.STARTING)
    pid = _pane_pid(tmux, "amux-hook01")
    ctime = procs.facts(pid).create_time
    finish(3)
    wait_until(lambda: manager.backend.list_live().panes["amux-hook01"].pane_dead, what="the exit")
    pane_id = manager.backend.list_live().panes["amux-hook01"].pane_id
    real_observe = manager.observe
    calls = [0]

    def observe(sessions: Sequence[Session], activity: bool = False) -> Any:
        looked = real_observe(sessions, activity)
        calls[0] += 1
        if calls[0] == 1:  # start finishes: the record is running now
            store.update(
                "hook01",
                lambda s: s.transition(Status.RUNNING, pid=pid, pid_create_time=ctime),
            )
        return looked

    monkeypatch.setattr(manager, "observe", observe)
    manager.settle_pane(pane_id, tries=5, interval=0.01)
    final = store.get("hook01")
    assert (final.status, final.exit_code) == (Status.FAILED, 3)


def test_reconcile_leaves_no_hidden_batch_session_behind(
    store: FileStore, store_id: str, socket_name: str, manager: Manager
) -> None:
    """Each batch of tmux changes attaches a control client to a private session that
    must not outlive it for long: after 20 runs that kill sessions, only the user's
    session is left once a batch's bounded lifetime (2 x the tmux timeout + 5 s) is over.

    (Before 04d8c08 such a session was sometimes left running `sleep 3600`: the
    `destroy-unattached` set after `new-session` on the client's argv did not always
    take effect; the batch's last command, which kills it, is still not always run.)
    """
    tmux = _raw(manager)
    tmux("new-session", "-d", "-s", "work", *SLEEP)
    quick = Manager(store, socket=socket_name, tmux_timeout=1.0)
    for run in range(20):
        for n in range(4):
            owned_session(tmux, f"b{run:02d}x{n}", store_id)
        report = quick.reconcile(REMOVE0)
        assert [o.done for o in report.outcomes] == [True] * 4
    seen: list[list[str]] = [[]]

    def only_work() -> bool:
        seen[0] = tmux("list-sessions", "-F", "#{session_name}").stdout.split()
        return seen[0] == ["work"]

    try:
        wait_until(only_work, timeout=2 * 1.0 + 5 + 5, what="only the user's session")
    except pytest.fail.Exception:
        pytest.fail(f"sessions left: {seen[0]}")
