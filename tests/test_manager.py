"""Lifecycle on a real tmux server (private socket): start, look, stop, rm, logs, send."""

from __future__ import annotations

import datetime as dt
import os
import pathlib
from collections.abc import Callable
from subprocess import CompletedProcess

import pytest

from amux_tmux import exc
from amux_tmux.manager import Manager, StartSpec
from amux_tmux.model import Session, Status, format_time
from amux_tmux.store import FileStore
from tests.conftest import agent_command, backdate, wait_until

TmuxCli = Callable[..., CompletedProcess[str]]


def _start(manager: Manager, *agent_args: str, **spec: object) -> Session:
    return manager.start(StartSpec(command=agent_command(*agent_args), **spec))  # type: ignore[arg-type]


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

    listed = manager.list(live=True)
    assert [(o.session.id, o.session.status, o.state) for o in listed] == [
        (session.id, Status.RUNNING, "alive")
    ]
    wait_until(_logs_contain(manager, "review", "agent ready"), what="agent output")
    # The pane's process is the agent itself (exec'd by the launcher), so pids agree.
    assert f"pid={session.pid}" in manager.logs(session.id)

    names = tmux_cli("list-sessions", "-F", "#{session_name}").stdout.split()
    assert names == [f"amux-{session.id}"]
    opts = tmux_cli("show-options", "-t", f"=amux-{session.id}:", "-v", "@amux_id").stdout
    assert opts.strip() == session.id

    stopped = manager.stop("review", timeout=5)
    assert stopped.status is Status.STOPPED
    assert stopped.stopped_at is not None
    assert tmux_cli("has-session", "-t", f"=amux-{session.id}").returncode != 0
    assert manager.list() == []  # ended: hidden without include_ended
    assert [o.session.id for o in manager.list(include_ended=True)] == [session.id]


@pytest.mark.parametrize(("code", "status"), [(0, Status.COMPLETED), (3, Status.FAILED)])
def test_agent_exit_is_recorded(manager: Manager, code: int, status: Status) -> None:
    """An agent that exits is recorded completed/failed with its exit code by the next look."""
    session = _start(manager, "--exit", str(code))
    final = wait_until(_status_becomes(manager, session.id, status), what=f"status {status}")
    assert final.exit_code == code
    # remain-on-exit kept the dead pane, so its last output is still readable.
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


def test_rm_refuses_live_without_force(manager: Manager, tmux_cli: TmuxCli) -> None:
    """rm keeps a running session unless forced; forced, it kills the tmux session too."""
    session = _start(manager)
    with pytest.raises(exc.SessionIsLive):
        manager.remove(session.id)
    assert manager.resolve(session.id).status is Status.RUNNING
    manager.remove(session.id, force=True)
    assert tmux_cli("has-session", "-t", f"=amux-{session.id}").returncode != 0
    with pytest.raises(exc.SessionNotFound):
        manager.resolve(session.id)


def test_rm_of_exited_session_needs_no_force(manager: Manager) -> None:
    """A session whose agent exited is not live: rm removes it without --force."""
    session = _start(manager, "--exit", "0")
    wait_until(_status_becomes(manager, session.id, Status.COMPLETED))
    manager.remove(session.id)
    assert manager.list(include_ended=True) == []


def test_send_types_into_the_agent(manager: Manager, tmux_cli: TmuxCli) -> None:
    """send types literally, then Enter; the pane's program reads it."""
    cat = manager.start(StartSpec(command=["cat"]))
    manager.send(cat.id, "hello; echo $HOME")
    wait_until(lambda: manager.logs(cat.id).count("hello; echo $HOME") == 2, what="echo")
    manager.send(cat.id, "no-newline", enter=False)
    wait_until(_logs_contain(manager, cat.id, "no-newline"))
    assert manager.logs(cat.id).count("no-newline") == 1  # cat has not seen a newline


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


def test_stale_starting_is_failed_by_list(store: FileStore, manager: Manager) -> None:
    """A CLI killed mid-start leaves 'starting'; past the timeout every command fails it."""
    old = format_time(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    record = Session(id="stale1", status=Status.STARTING, created_at=old, updated_at=old)
    store.create(record)
    backdate(store, "stale1", 3600)
    [seen] = manager.list(include_ended=True)
    assert seen.session.status is Status.FAILED
    fresh = Session(id="fresh1", status=Status.STARTING, created_at=old, updated_at=old)
    store.create(fresh)  # updated_at is now: still within the timeout
    statuses = {o.session.id: o.session.status for o in manager.list(include_ended=True)}
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
    snapshot = store.list()
    store.update("slow01", lambda s: s.transition(Status.RUNNING))
    real_list = store.list
    calls = iter([snapshot])
    monkeypatch.setattr(
        store, "list", lambda q=None: next(calls, None) or real_list(q)
    )
    [seen] = manager.list(include_ended=True)
    assert seen.session.status is Status.RUNNING
    assert store.get("slow01").status is Status.RUNNING


def test_start_rejects_bad_input_before_writing(manager: Manager, store: FileStore) -> None:
    """Bad command, cwd, name or env name: UsageError and no record at all."""
    cases: list[StartSpec] = [
        StartSpec(command=[]),
        StartSpec(command=["true"], cwd="/does/not/exist"),
        StartSpec(command=["true"], name="bad name!"),
        StartSpec(command=["true"], environment={"BAD-NAME": "x"}),
    ]
    for spec in cases:
        with pytest.raises(exc.UsageError):
            manager.start(spec)
    assert store.list().sessions == []
    assert not store.sessions_dir.exists() or not any(store.sessions_dir.iterdir())


def test_missing_command_fails_the_session(manager: Manager) -> None:
    """An agent binary that does not exist: the launcher exits 127, recorded as failed."""
    session = manager.start(StartSpec(command=["definitely-not-a-command-xyz"]))
    final = wait_until(_status_becomes(manager, session.id, Status.FAILED))
    assert final.exit_code == 127
    assert "command not found" in manager.logs(session.id)


def test_stop_from_every_state(manager: Manager, store: FileStore) -> None:
    """stop works on ended and orphaned records too, without losing the exit code."""
    done = _start(manager, "--exit", "5")
    wait_until(_status_becomes(manager, done.id, Status.FAILED))
    again = manager.stop(done.id)
    assert (again.status, again.exit_code) == (Status.FAILED, 5)
    assert manager.look(done.id).state == "gone"  # the dead pane's session was cleaned up

    orphan = Session(
        id="orph01", status=Status.ORPHANED, created_at=done.created_at, updated_at=done.created_at
    )
    store.create(orphan)
    assert manager.stop("orph01").status is Status.STOPPED
    assert manager.stop("orph01").status is Status.STOPPED  # idempotent


def test_cwd_and_public_env_reach_the_agent(
    manager: Manager, tmp_path: pathlib.Path, tmux_cli: TmuxCli
) -> None:
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
