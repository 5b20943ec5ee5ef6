"""Fleet features through the Manager (real tmux, private sockets), attacked as an outsider
would: hostile profile commands, a profile changed between start and restart, a label that
is also a profile's name, values that merely look masked, and the tmux cost of ``ls --live``
with activity for many sessions."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
from collections.abc import Callable
from subprocess import CompletedProcess
from typing import Any, NamedTuple

import pytest
import yaml

from amux_tmux import exc
from amux_tmux.manager import Manager, Policy, StartSpec
from amux_tmux.model import Activity, Session, Status
from amux_tmux.store import FileStore, Query
from tests.helpers import AGENT, gone_within, kill_server, wait_until

TmuxCli = Callable[..., CompletedProcess[str]]
PY = sys.executable
PROMPT = "Proceed? [y/n] "
WAITING = r"Proceed\? \[y/n\]"
SLOW = 30.0


def agent(*args: str) -> list[str]:
    return [PY, str(AGENT), *args]


def write_profiles(root: pathlib.Path, agents: dict[str, Any] | str) -> None:
    path = root / ".amux" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(agents if isinstance(agents, str) else yaml.safe_dump({"agents": agents}))


class Fleet(NamedTuple):
    root: pathlib.Path
    socket: str

    def manager(self) -> Manager:
        """A fresh manager, as each CLI invocation makes one (config read anew)."""
        return Manager(FileStore(self.root), socket=self.socket, grace=0.0)


@pytest.fixture
def fleet(tmp_path: pathlib.Path, socket_name: str) -> Fleet:
    return Fleet(tmp_path, socket_name)


def screen(tmux_cli: TmuxCli, sid: str) -> str:
    out = tmux_cli("capture-pane", "-p", "-J", "-t", f"=amux-{sid}:", "-S", "-200")
    assert out.returncode == 0, out.stderr
    return out.stdout


def shows(tmux_cli: TmuxCli, sid: str, text: str) -> Callable[[], bool]:
    return lambda: text in screen(tmux_cli, sid)


def reboot(fleet: Fleet, sessions: list[Session]) -> None:
    """Kill the server for sure, wait for the agents to go, and reconcile (grace 0)."""
    kill_server(fleet.manager().backend.socket_path)
    for s in sessions:
        assert s.pid is not None and gone_within(s.pid, 10)
    fleet.manager().reconcile(Policy(grace=0.0))
    for s in sessions:
        assert fleet.manager().resolve(s.id).status is Status.ORPHANED


# --- hostile profiles ---------------------------------------------------------------

HOSTILE_ARGS = [
    "kill-server;",
    ";",
    "#(touch pwned-format)",
    "$(touch pwned-shell)",
    "`touch pwned-tick`",
    "#{session_name}",
    "two\nlines",
    "-- --",
]


def test_hostile_profile_command_and_resume_are_plain_argv(
    fleet: Fleet, tmux_cli: TmuxCli
) -> None:
    """Profile argv elements that tmux or a shell would interpret reach the agent verbatim,
    on start and on resume, and the server (with another session on it) survives."""
    write_profiles(
        fleet.root,
        {
            "evil": {
                "command": agent("--argv", *HOSTILE_ARGS, "--print", "first-run"),
                "resume": agent("--argv", *HOSTILE_ARGS, "--print", "resumed-run"),
            }
        },
    )
    manager = fleet.manager()
    bystander = manager.start(StartSpec(command=agent("--print", "bystander")))
    evil = manager.start(StartSpec(agent="evil", command=["last;"]))
    wait_until(shows(tmux_cli, evil.id, "first-run"), SLOW, "the hostile agent")
    assert manager.logs(evil.id).count("argv ") == 1
    log = manager.logs(evil.id)
    assert '"kill-server;", ";", "#(touch pwned-format)"' in log
    assert '"#{session_name}", "two\\nlines", "-- --"' in log
    assert '"last;"]' in log

    again = fleet.manager().restart(evil.id, resume=True, caller=os.environ)
    assert again.id == evil.id
    wait_until(shows(tmux_cli, evil.id, "resumed-run"), SLOW, "the hostile resume")
    assert '"last;"]' in screen(tmux_cli, evil.id)  # the extra argument follows the resume
    assert list(fleet.root.glob("pwned*")) == []
    assert list(pathlib.Path.cwd().glob("pwned*")) == []
    names = tmux_cli("list-sessions", "-F", "#{session_name}").stdout.split()
    assert sorted(names) == sorted([f"amux-{bystander.id}", f"amux-{evil.id}"])


# --- a profile changed between start and restart -------------------------------------


def _profile(marker: str, resume: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"command": agent("--argv", "--print", marker)}
    if resume:
        body["resume"] = agent("--argv", "--print", f"{marker}-resumed")
    return body


class ChangeCase(NamedTuple):
    test_id: str
    after: dict[str, Any]  # the profiles once the session runs
    resume: bool  # restart --resume?
    expect: str | None  # what the new run prints; None: refused with a UsageError


CHANGES = [
    ChangeCase("command-changed-plain-restart", {"a": _profile("v2")}, False, "v1"),
    ChangeCase("command-changed-resume", {"a": _profile("v2")}, True, "v2-resumed"),
    ChangeCase("resume-removed", {"a": _profile("v1", resume=False)}, True, None),
    ChangeCase("profile-deleted-resume", {"b": _profile("v1")}, True, None),
    ChangeCase("profile-deleted-plain-restart", {"b": _profile("v1")}, False, "v1"),
]


@pytest.mark.parametrize("case", CHANGES, ids=lambda c: c.test_id)
def test_profile_changed_between_start_and_restart(
    case: ChangeCase, fleet: Fleet, tmux_cli: TmuxCli
) -> None:
    """A plain restart runs the recorded command; --resume uses the profile as it is now,
    and refuses when it has no resume command any more."""
    write_profiles(fleet.root, {"a": _profile("v1")})
    first = fleet.manager().start(StartSpec(agent="a"))
    wait_until(shows(tmux_cli, first.id, "v1"), SLOW, "the first run")
    write_profiles(fleet.root, case.after)
    manager = fleet.manager()
    if case.expect is None:
        with pytest.raises(exc.UsageError, match="resume"):
            manager.restart(first.id, resume=True, caller=os.environ)
        unchanged = manager.look(first.id)
        assert (unchanged.session.pid, unchanged.state) == (first.pid, "alive")
        return
    again = manager.restart(first.id, resume=case.resume, caller=os.environ)
    assert again.command == first.command  # the record keeps the command it was given
    wait_until(shows(tmux_cli, first.id, case.expect), SLOW, f"the run printing {case.expect}")


def test_a_broken_config_after_start(fleet: Fleet, tmux_cli: TmuxCli) -> None:
    """The config breaks while a profiled session runs: plain restart still works (it needs
    no profile); recover and --resume refuse with the config error, changing nothing."""
    write_profiles(fleet.root, {"a": _profile("v1")})
    first = fleet.manager().start(StartSpec(agent="a"))
    write_profiles(fleet.root, "agents:\n  a:\n    command: [x\n")
    manager = fleet.manager()
    with pytest.raises(exc.ConfigError):
        manager.restart(first.id, resume=True, caller=os.environ)
    again = fleet.manager().restart(first.id, caller=os.environ)
    assert again.status is Status.RUNNING
    wait_until(shows(tmux_cli, first.id, "v1"), SLOW, "the recorded command")
    reboot(fleet, [again])
    with pytest.raises(exc.ConfigError):
        fleet.manager().recover(caller=os.environ)
    assert fleet.manager().resolve(first.id).status is Status.ORPHANED


# --- labels, and values that only look masked --------------------------------------


def test_a_label_that_names_a_profile_is_recovered_with_its_own_command(
    fleet: Fleet, tmux_cli: TmuxCli
) -> None:
    """`start --agent myagent -- ./own-cmd` never ran the profile: after a reboot, recover
    must run ./own-cmd again, not the profile's resume command (another program)."""
    write_profiles(
        fleet.root,
        {
            "myagent": {
                "command": agent("--print", "profile-run"),
                "resume": agent("--print", "profile-resumed"),
            }
        },
    )
    own = fleet.manager().start(
        StartSpec(command=agent("--print", "own-command"), agent_id="myagent")
    )
    assert own.agent_id == "myagent"
    wait_until(shows(tmux_cli, own.id, "own-command"), SLOW, "the labelled command")
    reboot(fleet, [own])
    [result] = fleet.manager().recover(caller=os.environ)
    assert result.error is None
    wait_until(
        lambda: (
            "own-command" in screen(tmux_cli, own.id)
            or "profile-resumed" in screen(tmux_cli, own.id)
        ),
        SLOW,
        "the recovered session to print",
    )
    assert "profile-resumed" not in screen(tmux_cli, own.id)
    assert not result.resumed


class LookalikeCase(NamedTuple):
    test_id: str
    command: list[str]
    environment: dict[str, str]


LOOKALIKES = [
    # A markdown rule in a prompt is not a masked secret.
    LookalikeCase("argv-element", agent("--print", "***"), {}),
    LookalikeCase("argv-inside", agent("--print", "a ***bold*** word"), {}),
    LookalikeCase("env-value", agent("--show-env", "RULE"), {"RULE": "***"}),
]


@pytest.mark.parametrize("case", LOOKALIKES, ids=lambda c: c.test_id)
def test_restart_of_values_that_only_look_masked(
    case: LookalikeCase, fleet: Fleet, tmux_cli: TmuxCli
) -> None:
    """Nothing was secret, so restart needs nothing from the environment and runs the
    same command with the same values."""
    manager = fleet.manager()
    first = manager.start(StartSpec(command=case.command, environment=case.environment))
    assert list(first.command) == case.command  # recorded as given: nothing was masked
    assert dict(first.environment) == case.environment
    caller = {k: v for k, v in os.environ.items() if k != "RULE"}
    again = fleet.manager().restart(first.id, caller=caller)
    assert again.status is Status.RUNNING
    assert again.pid != first.pid


# --- activity ---------------------------------------------------------------------


CHEAP_PROFILES = {
    # A prompt its pattern matches, from a process that costs nothing.
    "cheap": {"command": ["sh", "-c", f"printf '{PROMPT}'; exec cat"], "waiting": [WAITING]},
    "plainprofile": {"command": ["sh", "-c", "echo hi; exec cat"]},
}


def server_pid(tmux_cli: TmuxCli) -> int:
    out = tmux_cli("display-message", "-p", "#{pid}")
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def test_ls_live_with_activity_costs_two_tmux_processes(
    fleet: Fleet, tmux_cli: TmuxCli, tmp_path: pathlib.Path
) -> None:
    """50 live sessions, 48 with waiting patterns: one listing and one batched capture,
    in the Manager (``backend.calls``) and in the CLI (a logging tmux on PATH)."""
    write_profiles(fleet.root, CHEAP_PROFILES)
    starter = fleet.manager()
    started = [starter.start(StartSpec(agent="cheap")) for _ in range(48)]
    started += [starter.start(StartSpec(agent="plainprofile")) for _ in range(2)]
    server = server_pid(tmux_cli)
    wait_until(
        lambda: all(PROMPT.strip() in screen(tmux_cli, s.id) for s in started[:48]),
        SLOW,
        "48 prompts",
    )

    manager = fleet.manager()
    rows = manager.listing(Query(), live=True).rows
    assert alive(server), "the tmux server died during ls --live (see the crash test)"
    assert sum(b.calls for b in manager._backends.values()) <= 2
    assert len(rows) == 50
    assert {o.state for o in rows} == {"alive"}, {o.unreachable for o in rows}
    waiting = {o.session.id for o in rows if o.activity is Activity.WAITING}
    assert waiting == {s.id for s in started[:48]}
    assert all(o.activity in (Activity.WORKING, Activity.IDLE) for o in rows[48:])

    # The CLI, counted by a tmux on PATH that logs each run and its parent.
    real = shutil.which("tmux")
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    log = tmp_path / "tmux-calls.log"
    (bindir / "tmux").write_text(
        f"#!/bin/sh\necho \"$PPID $*\" >> '{log}'\nexec '{real}' \"$@\"\n"
    )
    (bindir / "tmux").chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    argv = [PY, "-m", "amux_tmux", "--root", str(fleet.root), "--socket", fleet.socket]
    proc = subprocess.Popen(
        [*argv, "ls", "--live", "--json"], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert alive(server), "the tmux server died during ls --live (see the crash test)"
    assert proc.returncode == 0, err
    calls = [ln for ln in log.read_text().splitlines() if ln.split(" ", 1)[0] == str(proc.pid)]
    assert 1 <= len(calls) <= 2, calls
    listing = json.loads(out)
    assert sum(1 for r in listing if r.get("activity") == "waiting") == 48, err


def test_live_listings_do_not_crash_the_tmux_server(fleet: Fleet, tmux_cli: TmuxCli) -> None:
    """`ls --live` (or `watch amux-tmux ls --live`) run again and again over a few dozen
    agents must leave the tmux server, and so every agent, alive.

    tmux 3.3a segfaulted here (dmesg: "tmux: server[PID]: segfault at 10") after a few
    control-mode batches capturing the panes, when each batch's control client got a
    session that ``destroy-unattached`` destroyed as the client left."""
    write_profiles(fleet.root, CHEAP_PROFILES)
    starter = fleet.manager()
    started = [starter.start(StartSpec(agent="cheap")) for _ in range(30)]
    server = server_pid(tmux_cli)
    for n in range(30):
        fleet.manager().listing(Query(), live=True)
        assert alive(server), f"the tmux server died after {n + 1} live listings"
    rows = fleet.manager().listing(Query(), live=True).rows
    assert {(o.state, o.session.status) for o in rows} == {("alive", Status.RUNNING)}
    assert all(s.pid is not None and alive(s.pid) for s in started)


def test_mark_stands_until_later_output(fleet: Fleet, tmux_cli: TmuxCli) -> None:
    """The agent's own word is what ls shows, until the pane shows output after it."""
    manager = fleet.manager()
    session = manager.start(StartSpec(command=agent("--prompt", "> "), name="marked"))
    wait_until(shows(tmux_cli, session.id, "> "), SLOW, "the prompt")
    for state in (Activity.WAITING, Activity.IDLE, Activity.WORKING):
        marked = manager.mark("marked", state)
        assert marked.activity is state
        looked = fleet.manager().look("marked", activity=True)
        assert looked.activity is state
    # Marking an unknown session is "not found"; a bad ref is refused before any file.
    with pytest.raises(exc.SessionNotFound):
        manager.mark("nosuchsession", Activity.IDLE)
    with pytest.raises(exc.AmuxError):
        manager.mark("../../etc/passwd", Activity.IDLE)
