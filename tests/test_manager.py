"""Lifecycle on a real tmux server (private socket): start, look, list, stop, rm, prune,
rename, logs, send."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import pathlib
import subprocess
import time
from collections.abc import Callable
from subprocess import CompletedProcess
from typing import NamedTuple

import pytest

from amux_tmux import exc, procs
from amux_tmux.manager import Manager, Observed, StartSpec
from amux_tmux.model import ProcessFacts, Session, Status, format_time
from amux_tmux.store import FileStore, Query
from amux_tmux.tmux import Live
from tests.conftest import agent_command, backdate, make_record, owned_session, wait_until

TmuxCli = Callable[..., CompletedProcess[str]]


def _start(manager: Manager, *agent_args: str, **spec: object) -> Session:
    return manager.start(StartSpec(command=agent_command(*agent_args), **spec))  # type: ignore[arg-type]


def _rows(manager: Manager, live: bool = False, include_ended: bool = False) -> list[Observed]:
    return manager.listing(Query(include_ended=include_ended), live=live).rows


def _logs_contain(manager: Manager, ref: str, text: str) -> Callable[[], bool]:
    return lambda: text in manager.logs(ref)


def _status_becomes(manager: Manager, ref: str, status: Status) -> Callable[[], Session | None]:
    def check() -> Session | None:
        session = manager.look(ref).session
        return session if session.status is status else None

    return check


def test_start_list_logs_stop(manager: Manager, tmux_cli: TmuxCli) -> None:
    """The whole happy path, checked against raw tmux as the oracle."""
    session = _start(manager, name="review", agent_id="claude", workspace_id="ws-1")
    assert session.status is Status.RUNNING
    assert session.revision == 2  # starting, then running
    assert session.pid and session.pane_id and session.tmux_session_id
    assert session.tmux_socket == manager.backend.socket_path
    assert os.path.isabs(session.tmux_socket)

    listed = _rows(manager, live=True)
    assert [(o.session.id, o.session.status, o.state) for o in listed] == [
        (session.id, Status.RUNNING, "alive")
    ]
    wait_until(_logs_contain(manager, "review", "agent ready"), what="agent output")
    # The pane's process is the agent itself (exec'd by the launcher), so pids agree.
    assert f"pid={session.pid}" in manager.logs(session.id)

    names = tmux_cli("list-sessions", "-F", "#{session_name}").stdout.split()
    assert names == [f"amux-{session.id}"]
    for option, value in (("@amux_id", session.id), ("@amux_store", manager.store.store_id)):
        shown = tmux_cli("show-options", "-t", f"=amux-{session.id}:", "-v", option).stdout
        assert shown.strip() == value

    wait_until(manager.store.log_path(session.id).exists, what="the log")
    stopped = manager.stop("review", timeout=5)
    assert stopped.status is Status.STOPPED
    assert stopped.stopped_at is not None
    assert tmux_cli("has-session", "-t", f"=amux-{session.id}").returncode != 0
    assert _rows(manager) == []  # ended: hidden without include_ended
    assert [o.session.id for o in _rows(manager, include_ended=True)] == [session.id]
    assert "agent ready" in manager.logs(session.id)  # the log outlives the session


class Exit(NamedTuple):
    test_id: str
    code: int
    status: Status


EXITS = [Exit("exit-0", 0, Status.COMPLETED), Exit("exit-3", 3, Status.FAILED)]


@pytest.mark.parametrize("case", EXITS, ids=lambda c: c.test_id)
def test_agent_exit_is_recorded(manager: Manager, case: Exit) -> None:
    """An agent that exits is recorded completed/failed with its exit code by the next look
    (the pane-died hook's part is tested in tests/cli); the dead pane stays, so its output
    is still readable."""
    session = _start(manager, "--busy", "0.2", "--exit", str(case.code))
    final = wait_until(
        _status_becomes(manager, session.id, case.status), timeout=10, what=f"{case.status}"
    )
    assert final.exit_code == case.code
    assert "agent ready" in manager.logs(session.id)
    assert manager.look(session.id).state == "exited"


def test_exact_targets_never_prefix_match(
    manager: Manager, store: FileStore, monkeypatch: pytest.MonkeyPatch, tmux_cli: TmuxCli
) -> None:
    """Stopping abc12 must not touch amux-abc1234 (tmux matches bare names by prefix)."""
    ids = iter(["abc1234", "abc12"])
    monkeypatch.setattr(store, "new_id", lambda: next(ids))
    long = _start(manager)
    short = _start(manager)
    assert (long.id, short.id) == ("abc1234", "abc12")
    manager.stop("abc12", timeout=0)
    alive = tmux_cli("list-sessions", "-F", "#{session_name}").stdout.split()
    assert alive == ["amux-abc1234"]
    assert manager.look("abc1234").state == "alive"
    manager.remove("abc12")
    assert [s.id for s in store.list().sessions] == ["abc1234"]


def test_references(manager: Manager, store: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Full id, unique prefix and name resolve; an ambiguous prefix lists candidates."""
    ids = iter(["f00aaa", "f00bbb"])
    monkeypatch.setattr(store, "new_id", lambda: next(ids))
    _start(manager, name="alpha")
    _start(manager)
    assert manager.resolve("f00aaa").id == "f00aaa"
    assert manager.resolve("f00b").id == "f00bbb"
    assert manager.resolve("alpha").id == "f00aaa"
    with pytest.raises(exc.AmbiguousReference) as err:
        manager.resolve("f00")
    assert err.value.candidates == ("f00aaa", "f00bbb")
    assert err.value.exit_code == 2
    with pytest.raises(exc.SessionNotFound):
        manager.resolve("nothing")
    with pytest.raises(exc.InvalidSessionId):
        manager.resolve("../../etc/passwd")


def test_name_is_unique_among_live(manager: Manager) -> None:
    """A second live session cannot take a name; once the first ended, it can."""
    first = _start(manager, name="solo")
    with pytest.raises(exc.NameInUse):
        _start(manager, name="solo")
    manager.stop(first.id, timeout=0)
    second = _start(manager, name="solo")
    assert manager.resolve("solo").id == second.id  # the live one wins over the ended one


def test_name_that_is_an_id_prefix_is_refused(manager: Manager, store: FileStore) -> None:
    """A name equal to, or the start of, another session's id would shadow it: refused by
    start and by rename."""
    first = _start(manager)
    second = _start(manager, name="second")
    for name in (first.id, first.id[:4]):
        with pytest.raises(exc.UsageError, match=f"the id of session {first.id}"):
            _start(manager, name=name)
        with pytest.raises(exc.UsageError, match=f"the id of session {first.id}"):
            manager.rename(second.id, name)
    assert [s.name for s in store.list().sessions] == [None, "second"]


def test_rename(manager: Manager) -> None:
    """rename changes the name a session is found by; a live duplicate is refused."""
    first = _start(manager, name="one")
    second = _start(manager, name="two")
    assert manager.rename("one", "uno").id == first.id
    assert manager.resolve("uno").id == first.id
    with pytest.raises(exc.SessionNotFound):
        manager.resolve("one")
    with pytest.raises(exc.NameInUse):
        manager.rename(second.id, "uno")
    assert manager.resolve("two").id == second.id


def test_rm_refuses_live_without_force(manager: Manager, tmux_cli: TmuxCli) -> None:
    """rm keeps a running session unless forced; forced, it kills the tmux session too and
    removes the log."""
    session = _start(manager)
    wait_until(manager.store.log_path(session.id).exists, what="the log")
    with pytest.raises(exc.SessionIsLive):
        manager.remove(session.id)
    assert manager.resolve(session.id).status is Status.RUNNING
    manager.remove(session.id, force=True)
    assert tmux_cli("has-session", "-t", f"=amux-{session.id}").returncode != 0
    assert not manager.store.log_path(session.id).exists()
    with pytest.raises(exc.SessionNotFound):
        manager.resolve(session.id)


def test_rm_of_exited_session_needs_no_force(manager: Manager, store: FileStore) -> None:
    """A session whose agent exited is not live: rm removes it without --force."""
    session = _start(manager, "--exit", "0")
    wait_until(_status_becomes(manager, session.id, Status.COMPLETED), timeout=10)
    manager.remove(session.id)
    assert _rows(manager, include_ended=True) == []


def test_prune(manager: Manager, store: FileStore, tmux_cli: TmuxCli) -> None:
    """prune removes ended records (and the dead pane of an exited one); dry run lists
    them; a live session stays."""
    live = _start(manager)
    exited = _start(manager, "--exit", "0")
    stopped = _start(manager)
    manager.stop(stopped.id, timeout=0)
    wait_until(_status_becomes(manager, exited.id, Status.COMPLETED), timeout=10)
    planned = manager.prune(dry_run=True)
    assert sorted(s.id for s in planned) == sorted([exited.id, stopped.id])
    assert len(store.list(Query(include_ended=True)).sessions) == 3
    assert sorted(s.id for s in manager.prune()) == sorted([exited.id, stopped.id])
    assert [s.id for s in store.list(Query(include_ended=True)).sessions] == [live.id]
    names = tmux_cli("list-sessions", "-F", "#{session_name}").stdout.split()
    assert names == [f"amux-{live.id}"]


def test_send_types_into_the_agent(manager: Manager) -> None:
    """send types literally, then Enter; the pane's program reads it."""
    cat = manager.start(StartSpec(command=["cat"]))
    manager.send(cat.id, "hello; echo $HOME")
    wait_until(lambda: manager.logs(cat.id).count("hello; echo $HOME") == 2, what="echo")
    manager.send(cat.id, "no-newline", enter=False)
    wait_until(_logs_contain(manager, cat.id, "no-newline"))
    assert manager.logs(cat.id).count("no-newline") == 1  # cat has not seen a newline


def test_send_to_an_exited_agent_raises(manager: Manager, store: FileStore) -> None:
    session = _start(manager, "--exit", "0")
    wait_until(_status_becomes(manager, session.id, Status.COMPLETED), timeout=10)
    with pytest.raises(exc.SessionEnded):
        manager.send(session.id, "hello")


def test_logs_last_lines(manager: Manager) -> None:
    """logs -n N returns only the last N lines."""
    session = manager.start(
        StartSpec(command=["sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; sleep 600"])
    )
    wait_until(_logs_contain(manager, session.id, "line5"))
    assert manager.logs(session.id, 2).split() == ["line4", "line5"]
    assert manager.logs(session.id, 0) == ""


def test_follow_stops_when_agent_exits(manager: Manager) -> None:
    """logs -f prints new output and returns once the agent exits, with the exit recorded."""
    session = manager.start(
        StartSpec(command=["sh", "-c", "echo one; sleep 0.3; echo two; sleep 0.3; exit 4"])
    )
    seen: list[str] = []
    final = manager.follow(session.id, seen.append, interval=0.05)
    assert "one" in seen
    assert "two" in seen
    assert final.status is Status.FAILED
    assert final.exit_code == 4, final


def test_start_failure_marks_record_failed(
    manager: Manager, store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If tmux refuses, the record ends failed with the reason and start raises."""

    def refuse(*args: object, **kwargs: object) -> object:
        raise exc.TmuxCommandFailed("new-session", "duplicate session")

    monkeypatch.setattr(manager.backend, "new_session", refuse)
    with pytest.raises(exc.SessionStartFailed):
        _start(manager)
    [record] = store.list().sessions
    assert record.status is Status.FAILED
    assert record.error is not None
    assert "duplicate session" in record.error


def _agent_ends_before_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make start's check on its agent (after the hand-over) wait until the agent ended."""
    real = procs.facts
    checks: list[int] = []

    def facts_once_ended(pid: int) -> ProcessFacts:
        checks.append(pid)
        if len(checks) > 1:
            wait_until(lambda: real(pid).create_time is None or real(pid).zombie)
        return real(pid)

    monkeypatch.setattr(procs, "facts", facts_once_ended)


class AtOnce(NamedTuple):
    test_id: str
    script: str
    fails: bool
    status: Status


AT_ONCE = [
    AtOnce("fails", "echo 'cannot read config: x.toml'; exit 3", True, Status.FAILED),
    AtOnce("killed", "echo bye; kill -9 $$", True, Status.FAILED),
    AtOnce("exits-0", "echo done", False, Status.COMPLETED),
]


@pytest.mark.parametrize("case", AT_ONCE, ids=lambda c: c.test_id)
def test_an_agent_that_ends_before_start_returns(
    manager: Manager, store: FileStore, monkeypatch: pytest.MonkeyPatch, case: AtOnce
) -> None:
    """An agent already gone when start checks on it: a failure is start's failure (its
    status and last line said), the record ended either way; exit 0 is no failure."""
    _agent_ends_before_the_check(monkeypatch)
    spec = StartSpec(command=["sh", "-c", case.script])
    if case.fails:
        with pytest.raises(exc.SessionStartFailed) as err:
            manager.start(spec)
        message = str(err.value)
        assert ("status 3" if case.test_id == "fails" else "signal 9") in message
        assert ("cannot read config: x.toml" if case.test_id == "fails" else "bye") in message
        assert "\n" not in message
    else:
        manager.start(spec)
    [record] = store.list(Query(include_ended=True)).sessions
    assert record.status is case.status


class Leak(NamedTuple):
    test_id: str
    pad: int
    given: str  # how the agent got the secret


LEAKS = [
    Leak("cut-across-the-secret-given-with-e", 180, "-e"),
    Leak("whole-secret-given-with-e", 20, "-e"),
    Leak("inherited-from-the-caller", 20, "inherited"),
]


@pytest.mark.parametrize("case", LEAKS, ids=lambda c: c.test_id)
def test_the_last_line_of_an_agent_that_failed_shows_no_secret(
    manager: Manager, monkeypatch: pytest.MonkeyPatch, case: Leak
) -> None:
    """The line quoted from the agent is masked before it is cut to length, and values
    the agent inherited under secret names are masked too."""
    secret = "correct-horse-battery-staple-9876543210"
    _agent_ends_before_the_check(monkeypatch)
    script = f'echo "{"x" * case.pad} $DB_PASSWORD"; exit 3'
    env = {"DB_PASSWORD": secret} if case.given == "-e" else {}
    caller = {**os.environ, "DB_PASSWORD": secret} if case.given == "inherited" else {}
    spec = StartSpec(command=["sh", "-c", script], environment=env, caller_environment=caller)
    with pytest.raises(exc.SessionStartFailed) as err:
        manager.start(spec)
    message = str(err.value)
    assert "xxxxxxxxxx" in message  # the oracle: the line is quoted
    assert not any(secret[:n] in message for n in range(8, len(secret) + 1)), message


class Interrupt(NamedTuple):
    test_id: str
    when: str


INTERRUPTS = [
    Interrupt("while-tmux-makes-the-session", "new_session"),
    Interrupt("before-running-is-written", "running"),
]


@pytest.mark.parametrize("case", INTERRUPTS, ids=lambda c: c.test_id)
def test_an_interrupted_start_leaves_no_agent(
    manager: Manager,
    store: FileStore,
    monkeypatch: pytest.MonkeyPatch,
    tmux_cli: TmuxCli,
    case: Interrupt,
) -> None:
    """Ctrl-C after tmux made the session but before start learnt of it, or before the
    'running' write: the session goes, the record is failed."""
    if case.when == "new_session":
        real_new = manager.backend.new_session

        def made_then_interrupted(*args: object, **kwargs: object) -> object:
            real_new(*args, **kwargs)  # type: ignore[arg-type]
            raise KeyboardInterrupt

        monkeypatch.setattr(manager.backend, "new_session", made_then_interrupted)
    else:
        real_update = store.update

        def interrupted_on_running(sid: str, change: Callable[[Session], Session]) -> Session:
            if change(store.get(sid)).status is Status.RUNNING:
                raise KeyboardInterrupt
            return real_update(sid, change)

        monkeypatch.setattr(store, "update", interrupted_on_running)
    with pytest.raises(KeyboardInterrupt):
        _start(manager)
    monkeypatch.undo()
    [record] = store.list(Query(include_ended=True)).sessions
    assert (record.status, record.error) == (Status.FAILED, "start was interrupted")
    assert tmux_cli("list-sessions", "-F", "#{session_name}").stdout == ""


def test_exec_failure_fails_the_start(
    manager: Manager, store: FileStore, tmp_path: pathlib.Path, tmux_cli: TmuxCli
) -> None:
    """Found and executable, but exec fails (a missing interpreter): start raises, the
    record is failed with 127 and the tmux session is gone."""
    program = tmp_path / "agent"
    program.write_text("#!/nonexistent/interpreter\n")
    program.chmod(0o755)
    with pytest.raises(exc.SessionStartFailed) as err:
        manager.start(StartSpec(command=[str(program)]))
    assert err.value.exit_code == 1
    [record] = store.list(Query(include_ended=True)).sessions
    assert (record.status, record.exit_code) == (Status.FAILED, 127)
    assert tmux_cli("list-sessions").stdout == ""


def test_stale_starting_is_failed_by_list(store: FileStore, manager: Manager) -> None:
    """A CLI killed mid-start leaves 'starting'; past the timeout every command fails it."""
    old = format_time(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    record = Session(id="stale1", status=Status.STARTING, created_at=old, updated_at=old)
    store.create(record)
    backdate(store, "stale1", 3600)
    [seen] = _rows(manager, include_ended=True)
    assert seen.session.status is Status.FAILED
    fresh = Session(id="fresh1", status=Status.STARTING, created_at=old, updated_at=old)
    store.create(fresh)  # updated_at is now: still within the timeout
    statuses = {o.session.id: o.session.status for o in _rows(manager, include_ended=True)}
    assert statuses == {"stale1": Status.FAILED, "fresh1": Status.STARTING}


def test_stale_start_that_finished_meanwhile_is_left_running(
    store: FileStore, manager: Manager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """list saw a stale 'starting' record, but the start completed before list took the
    lock: the re-check under the lock keeps it running."""
    old = format_time(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    stale = Session(id="slow01", status=Status.STARTING, created_at=old, updated_at=old)
    store.create(stale)
    backdate(store, "slow01", 3600)
    snapshot = store.list(Query(include_ended=True))
    store.update("slow01", lambda s: s.transition(Status.RUNNING))
    real_list = store.list
    calls = iter([snapshot])
    monkeypatch.setattr(store, "list", lambda q=None: next(calls, None) or real_list(q))
    [seen] = _rows(manager, include_ended=True)
    assert seen.session.status is Status.RUNNING
    assert store.get("slow01").status is Status.RUNNING


def test_start_rejects_bad_input_before_writing(
    manager: Manager, store: FileStore, tmp_path: pathlib.Path
) -> None:
    """Bad command (absent, not executable, a directory), cwd, name, env name or label:
    UsageError, no record and no tmux server."""
    script = tmp_path / "not-executable.sh"
    script.write_text("echo hi\n")
    cases: list[StartSpec] = [
        StartSpec(command=[]),
        StartSpec(command=["definitely-not-a-command-xyz"]),
        StartSpec(command=[str(script)]),
        StartSpec(command=[str(tmp_path)]),
        StartSpec(command=["true"], cwd="/does/not/exist"),
        StartSpec(command=["true"], name="bad name!"),
        StartSpec(command=["true"], environment={"BAD-NAME": "x"}),
        StartSpec(command=["true"], agent_id="bad\nlabel"),
    ]
    for spec in cases:
        with pytest.raises(exc.UsageError):
            manager.start(spec)
    assert store.list().sessions == []
    assert not store.sessions_dir.exists() or not any(store.sessions_dir.iterdir())
    assert not os.path.exists(manager.backend.socket_path)


def test_command_is_found_in_the_agent_s_path(manager: Manager, tmp_path: pathlib.Path) -> None:
    """The command is looked up in the PATH the agent will have (an -e PATH included), as
    execvp would."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "my-agent"
    tool.write_text("#!/bin/sh\necho my-agent-ran; sleep 600\n")
    tool.chmod(0o755)
    with pytest.raises(exc.UsageError, match="'my-agent' not found"):
        manager.start(StartSpec(command=["my-agent"]))
    session = manager.start(
        StartSpec(command=["my-agent"], environment={"PATH": f"{bindir}:/usr/bin:/bin"})
    )
    wait_until(_logs_contain(manager, session.id, "my-agent-ran"), what="the agent's output")


def test_stop_from_every_state(manager: Manager, store: FileStore) -> None:
    """stop works on ended and orphaned records too, without losing the exit code."""
    _start(manager)  # keeps the server up (see test_ls_live_on_a_server_without_sessions)
    done = _start(manager, "--exit", "5")
    wait_until(_status_becomes(manager, done.id, Status.FAILED), timeout=10)
    again = manager.stop(done.id)
    assert (again.status, again.exit_code) == (Status.FAILED, 5)
    assert manager.look(done.id).state == "gone"  # the dead pane's session was cleaned up

    orphan = Session(
        id="orph01", status=Status.ORPHANED, created_at=done.created_at, updated_at=done.created_at
    )
    store.create(orphan)
    assert manager.stop("orph01").status is Status.STOPPED
    assert manager.stop("orph01").status is Status.STOPPED  # idempotent


def test_a_dead_pane_without_its_status_yet_is_not_judged_failed(
    manager: Manager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tmux 3.3a marks a pane dead (with a death time) when its pty closes, a moment before
    it reaps the agent and learns the exit status. A look in that moment, while the
    agent's process is still there, must wait for the status, not record ``failed``
    ("tmux did not report how"): seen here for an agent that exited 0, about once in 90
    starts under load. Reproduced deterministically: the listing says dead without a
    status while the recorded agent still runs; then tmux reports exit 0."""
    session = _start(manager)
    [pane] = manager.backend.list_live().panes.values()
    dead = dataclasses.replace(
        pane,
        pane_dead=True,
        pane_dead_status=None,
        pane_dead_signal=None,
        pane_dead_time=int(time.time()),
    )
    monkeypatch.setattr(manager.backend, "list_live", lambda: Live({pane.session_name: dead}))
    assert manager.look(session.id).session.status is Status.RUNNING
    reaped = dataclasses.replace(dead, pane_dead_status=0)
    monkeypatch.setattr(manager.backend, "list_live", lambda: Live({pane.session_name: reaped}))
    final = manager.look(session.id).session
    assert (final.status, final.exit_code) == (Status.COMPLETED, 0)


class Zombie(NamedTuple):
    test_id: str
    script: str
    status: Status


ZOMBIES = [
    Zombie("hung-up-by-a-dying-server", "kill -HUP $$", Status.RUNNING),
    Zombie("a-shell-reporting-a-hang-up", "exit 129", Status.RUNNING),
    Zombie("its-own-failure", "exit 3", Status.FAILED),
]


@pytest.mark.parametrize("case", ZOMBIES, ids=lambda c: c.test_id)
def test_plain_ls_records_an_unreaped_exit_unless_it_was_a_hang_up(
    manager: Manager, store: FileStore, case: Zombie
) -> None:
    """The agent is a zombie nobody reaped (its tmux server is going away): its exit is
    recorded at once, but a hang-up is the server's going, not the agent's failure."""
    child = subprocess.Popen(["sh", "-c", case.script])  # never waited for: a zombie
    try:
        wait_until(lambda: procs.facts(child.pid).zombie, what="the zombie")
        created = procs.facts(child.pid).create_time
        make_record(store, "zomb01", manager.backend.socket_path, pid=child.pid,
                    pid_create_time=created)  # fmt: skip
        manager.listing(Query(include_ended=True))
        assert store.get("zomb01").status is case.status
    finally:
        child.wait()


def test_stop_of_an_interrupted_start(
    manager: Manager, store: FileStore, tmux_cli: TmuxCli
) -> None:
    """A start killed after it made the tmux session leaves ``starting`` and a live owned
    session: stop kills the session and records ``stopped``."""
    os.makedirs(os.path.dirname(manager.backend.socket_path), mode=0o700, exist_ok=True)
    owned_session(tmux_cli, "half01", store.ensure_store_id())
    make_record(store, "half01", manager.backend.socket_path, Status.STARTING)
    assert manager.stop("half01", timeout=1).status is Status.STOPPED
    assert tmux_cli("list-sessions").stdout == ""


def test_cwd_and_public_env_reach_the_agent(manager: Manager, tmp_path: pathlib.Path) -> None:
    """The agent runs in --cwd and sees non-secret -e values and AMUX_SESSION_ID."""
    work = tmp_path / "work"
    work.mkdir()
    session = manager.start(
        StartSpec(
            command=["sh", "-c", 'echo "cwd=$(pwd) mode=$MODE id=$AMUX_SESSION_ID"; sleep 600'],
            cwd=str(work),
            environment={"MODE": "review"},
        )
    )
    expected = f"cwd={work} mode=review id={session.id}"
    wait_until(_logs_contain(manager, session.id, expected), what=expected)
    assert session.environment == {"MODE": "review"}
