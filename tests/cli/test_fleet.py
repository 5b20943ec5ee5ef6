"""Fleet features end to end (real tmux, private sockets): profiles, restart, recover after a
simulated reboot, activity (working / waiting / idle), ``mark``, ``wait``, the server options
agents expect, and what each costs in tmux processes."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import pathlib
import resource
import shutil
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import pytest
import yaml

from tests.cli.conftest import Cli, assert_one_line_error, describe
from tests.helpers import AGENT, gone_within, kill_server, procs_holding, tmux_runner, wait_until

PY = sys.executable
PROMPT = "Proceed? [y/n] "
WAITING = r"Proceed\? \[y/n\]"
SECRET = "FLEET_SECRET"
PUBLIC = "FLEET_PUBLIC"
# Generous: other engineers run their suites on the same two cores.
SLOW = 30.0


def agent(*args: str) -> list[str]:
    """The test agent's argv (see tests/agents/agent.py)."""
    return [PY, str(AGENT), *args]


PROFILES: dict[str, dict[str, Any]] = {
    # Reports argv, a length fingerprint of the secret, the public value; then a prompt
    # its waiting pattern matches. Its resume command says so.
    "myagent": {
        "command": agent("--argv", "--env", SECRET, "--show-env", PUBLIC, "--prompt", PROMPT),
        "env": [PUBLIC],
        "secrets": [SECRET],
        "resume": agent("--argv", "--print", "resumed", "--env", SECRET, "--prompt", PROMPT),
        "waiting": [WAITING],
    },
    # Prints a dot every 0.2 s for 6 s, then waits at a prompt its pattern matches.
    "busy": {
        "command": agent("--busy", "6", "--prompt", PROMPT),
        "waiting": [WAITING],
        "working_seconds": 2,
    },
    # Says one line, then is silent; no waiting pattern.
    "quiet": {"command": agent("--print", "quiet-ready"), "working_seconds": 1},
    # A prompt no pattern matches: idle until a line is typed, then it answers.
    "chatty": {"command": agent("--prompt", "> "), "working_seconds": 1},
    # Waits at a matching prompt, but has no resume command.
    "noresume": {"command": agent("--prompt", PROMPT), "waiting": [WAITING]},
    # Has a waiting pattern its silent agent never matches.
    "neverwaits": {"command": agent("--print", "never-waits"), "waiting": [WAITING]},
}


def write_config(root: pathlib.Path, agents: dict[str, Any] | str) -> pathlib.Path:
    """Write ``root/.amux/config.yaml`` (a mapping of profiles, or raw text)."""
    path = root / ".amux" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = agents if isinstance(agents, str) else yaml.safe_dump({"agents": agents})
    path.write_text(text)
    return path


@pytest.fixture
def fleet(cli: Cli, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The CLI with the test profiles, and a user config dir that is not the real HOME's."""
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    for name in (SECRET, PUBLIC, "AMUX_SESSION_ID", "AMUX_ROOT"):
        monkeypatch.delenv(name, raising=False)
    write_config(cli.root, PROFILES)
    return cli


def env_with(**values: str) -> dict[str, str]:
    return {**os.environ, **values}


def start(cli: Cli, *args: str, env: dict[str, str] | None = None) -> str:
    """``start ARGS...``; return the printed id."""
    out = cli.run("start", *args, env=env).stdout.strip()
    assert len(out) == 10, out
    return out


def live_row(cli: Cli, sid: str) -> dict[str, Any]:
    rows = cli.json("ls", "--live")
    return next(r for r in rows if r["id"] == sid)


def activity_becomes(cli: Cli, sid: str, activity: str) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        row = live_row(cli, sid)
        return row if row.get("activity") == activity else None

    return check


def screen(cli: Cli, sid: str) -> str:
    """What the pane of ``amux-<sid>`` shows now (raw tmux: the oracle)."""
    out = cli.tmux("capture-pane", "-p", "-J", "-t", f"=amux-{sid}:", "-S", "-200")
    assert out.returncode == 0, out.stderr
    return out.stdout


def screen_has(cli: Cli, sid: str, text: str) -> Callable[[], bool]:
    return lambda: text in screen(cli, sid)


def argv_line(text: str) -> list[str]:
    """The agent's ``argv [...]`` report in ``text`` (the last one)."""
    lines = [ln for ln in text.splitlines() if ln.startswith("argv [")]
    assert lines, text
    parsed: list[str] = json.loads(lines[-1][len("argv ") :])
    return parsed


def files_holding(root: pathlib.Path, needle: bytes) -> list[str]:
    found = []
    for path in root.rglob("*"):
        try:
            if stat.S_ISREG(path.lstat().st_mode) and needle in path.read_bytes():
                found.append(str(path))
        except FileNotFoundError:
            continue
    return found


def nothing_created(cli: Cli) -> None:
    """No record, no store id, no tmux server: only the config file under ``.amux/``."""
    amux = cli.root / ".amux"
    assert sorted(p.name for p in amux.iterdir()) == ["config.yaml"]
    assert not os.path.exists(cli.socket_path)


# --- a logging fake tmux ----------------------------------------------------------


class TmuxLog(NamedTuple):
    env: dict[str, str]
    path: pathlib.Path

    def calls_by(self, pid: int) -> list[str]:
        """Every tmux run whose parent was ``pid`` (``ppid argv...`` per line)."""
        if not self.path.exists():
            return []
        return [
            line.split(" ", 1)[1] if " " in line else ""
            for line in self.path.read_text().splitlines()
            if line.split(" ", 1)[0] == str(pid)
        ]


@pytest.fixture
def tmux_log(tmp_path: pathlib.Path) -> TmuxLog:
    """A ``tmux`` first on PATH that logs its parent pid and argv, then execs the real one."""
    real = shutil.which("tmux")
    assert real is not None
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    log = tmp_path / "tmux-calls.log"
    wrapper = bindir / "tmux"
    wrapper.write_text(f"#!/bin/sh\necho \"$PPID $*\" >> '{log}'\nexec '{real}' \"$@\"\n")
    wrapper.chmod(0o755)
    env = env_with(PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return TmuxLog(env, log)


def run_logged(cli: Cli, log: TmuxLog, *args: str, timeout: float = SLOW) -> tuple[int, str, int]:
    """Run the CLI through the logging tmux; return (exit code, stdout, its pid)."""
    proc = subprocess.Popen(
        cli.argv(*args),
        env=log.env,
        cwd=cli.root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
    assert "Traceback" not in err, err
    return proc.returncode, out, proc.pid


@contextlib.contextmanager
def background(cli: Cli, *args: str, env: dict[str, str] | None = None) -> Iterator[Any]:
    """Run the CLI in the background; it is killed on the way out whatever happens."""
    proc = subprocess.Popen(
        cli.argv(*args),
        env=env,
        cwd=cli.root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


# --- profiles ---------------------------------------------------------------------


def test_profile_start_runs_its_command_with_args_env_and_secrets(fleet: Cli) -> None:
    """`start myagent -- extra args`: the profile's argv plus the args; its env names copied;
    its secret masked everywhere but still handed to the agent."""
    cli = fleet
    canary = f"CANARY{uuid.uuid4().hex}"
    stray = f"STRAY{uuid.uuid4().hex}"
    env = env_with(FLEET_SECRET=canary, FLEET_PUBLIC="pub-value", FLEET_OTHER=stray)
    sid = start(cli, "myagent", "--name", "prof", "--", "extra", "two words", env=env)
    record = cli.show("prof")
    assert record["id"] == sid
    assert record["agent_id"] == "myagent"
    assert record["command"] == [*PROFILES["myagent"]["command"], "extra", "two words"]
    # Only what the profile names is recorded; the secret masked.
    assert record["environment"] == {PUBLIC: "pub-value", SECRET: "***"}

    wait_until(screen_has(cli, sid, "Proceed?"), SLOW, "the agent's prompt")
    text = screen(cli, sid)
    assert argv_line(text) == [*PROFILES["myagent"]["command"][2:], "extra", "two words"]
    assert f"env {SECRET} present=True len={len(canary)}" in text
    assert f'show {PUBLIC} "pub-value"' in text
    pid = record["pid"]
    with open(f"/proc/{pid}/environ", "rb") as f:
        assert f"{SECRET}={canary}".encode() in f.read().split(b"\0")

    # Every reading command, in every format.
    cli.run("ls")
    cli.run("ls", "--live")
    cli.run("ls", "--all", "--live", "--json")
    cli.run("show", sid)
    cli.run("logs", sid)
    needle = canary.encode()
    assert files_holding(cli.root / ".amux", needle) == []
    for scope in (("-g",), ("-t", f"=amux-{sid}")):
        shown = cli.tmux("show-environment", *scope)
        assert shown.returncode == 0
        assert canary not in shown.stdout
        assert stray not in shown.stdout
    start_cmd = cli.tmux("display", "-p", "-t", record["pane_id"], "#{pane_start_command}")
    assert "amux_tmux.launch" in start_cmd.stdout
    assert canary not in start_cmd.stdout
    assert procs_holding(needle, "cmdline") == []
    assert procs_holding(needle, "environ", skip={pid}) == []
    for run in cli.runs:
        assert canary not in run.stdout + run.stderr, describe(run)


def test_agent_label_without_a_profile_stays_a_label(fleet: Cli) -> None:
    """`--agent label -- cmd`: the label is recorded, no profile's env is applied."""
    cli = fleet
    sid = start(
        cli, "--agent", "reviewer", "--", *agent("--print", "labelled"),
        env=env_with(FLEET_PUBLIC="pub"),
    )  # fmt: skip
    record = cli.show(sid)
    assert record["agent_id"] == "reviewer"
    assert record["command"] == agent("--print", "labelled")
    assert record["environment"] == {}
    wait_until(screen_has(cli, sid, "labelled"), SLOW, "the command to run")
    assert [r["agent_id"] for r in cli.json("ls", "--agent", "reviewer")] == ["reviewer"]


def test_unknown_agent_lists_the_known_ones(fleet: Cli) -> None:
    result = fleet.run("start", "nosuchagent", code=None)
    line = assert_one_line_error(result, 2)
    assert "nosuchagent" in line
    for known in ("myagent", "quiet", "claude", "codex"):
        assert known in line
    nothing_created(fleet)


class ConfigErrorCase(NamedTuple):
    test_id: str
    text: str
    line: int
    key: str  # what the message must name ("" when only a line applies)
    user_layer: bool = False


CONFIG_ERRORS = [
    ConfigErrorCase(
        "bad-yaml", "agents:\n  x:\n    command: [sleep, '1'\n  y: 2\n", 4, "not valid YAML"
    ),
    ConfigErrorCase(
        "unknown-key", "agents:\n  x:\n    command: [sleep, '1']\n    bogus: 1\n", 4,
        "agents.x.bogus",
    ),
    ConfigErrorCase(
        "bad-regex", "agents:\n  x:\n    command: [sleep, '1']\n    waiting: ['(open']\n", 4,
        "agents.x.waiting[0]",
    ),
    ConfigErrorCase(
        "catastrophic-regex",
        "agents:\n  x:\n    command: [sleep, '1']\n    waiting:\n      - ok\n      - '(a+)+$'\n",
        6, "agents.x.waiting[1]",
    ),
    ConfigErrorCase(
        "hostile-agent-name", "agents:\n  'x;kill-server':\n    command: [sleep, '1']\n", 2,
        "x;kill-server",
    ),
    ConfigErrorCase(
        "reserved-env", "agents:\n  x:\n    command: [sleep, '1']\n    env: [AMUX_ROOT]\n", 4,
        "agents.x.env",
    ),
    ConfigErrorCase(
        "python-tag", "agents:\n  x:\n    command: !!python/object/apply:os.system [id]\n", 3,
        "tags are not allowed",
    ),
    ConfigErrorCase(
        "user-layer-unknown-key", "agents:\n  x:\n    command: [sleep, '1']\n    comand: [x]\n",
        4, "agents.x.comand", user_layer=True,
    ),
]  # fmt: skip


@pytest.mark.parametrize("case", CONFIG_ERRORS, ids=lambda c: c.test_id)
def test_config_errors_are_one_line_naming_file_line_and_key(
    case: ConfigErrorCase, fleet: Cli, tmp_path: pathlib.Path
) -> None:
    cli = fleet
    if case.user_layer:
        write_config(cli.root, {"ok": {"command": ["sleep", "1"]}})
        path = tmp_path / "xdg" / "amux-tmux" / "config.yaml"
        path.parent.mkdir(parents=True)
        path.write_text(case.text)
    else:
        path = write_config(cli.root, case.text)
    result = cli.run("start", "x", "--", "arg", code=None)
    line = assert_one_line_error(result, 2)
    shown = os.path.relpath(path, cli.root)  # the CLI ran in the root
    assert f"{shown}:{case.line}:" in line
    assert case.key in line
    nothing_created(cli)


# --- a simulated reboot, reconcile, recover --------------------------------------


def _records(cli: Cli, ids: list[str]) -> list[dict[str, Any]]:
    return [cli.show(s) for s in ids]


def test_reboot_reconcile_recover_brings_every_session_back(fleet: Cli) -> None:
    cli = fleet
    canary = f"CANARY{uuid.uuid4().hex}"
    env = env_with(FLEET_SECRET=canary)
    first = start(cli, "myagent", "--", "extra", env=env)
    plain = start(cli, "--", *agent("--argv", "--print", "plain-run"))
    named = start(cli, "--name", "named", "--", *agent("--print", "named-run"))
    ids = [first, plain, named]
    before = {r["id"]: r for r in _records(cli, ids)}
    wait_until(screen_has(cli, first, "Proceed?"), SLOW, "the profiled agent to start")
    server_pid = int(cli.tmux("display", "-p", "#{pid}").stdout)

    # The reboot: the server and every agent are gone for sure.
    kill_server(cli.socket_path)
    assert gone_within(server_pid, 10)
    for record in before.values():
        assert gone_within(record["pid"], 10), record["pid"]
    assert not os.path.exists(cli.socket_path)

    cli.run("reconcile", "--grace", "0")
    orphaned = _records(cli, ids)
    assert [r["status"] for r in orphaned] == ["orphaned"] * 3
    revisions = [r["revision"] for r in orphaned]

    # Not on a terminal and no --yes: nothing is done, and it says so.
    line = assert_one_line_error(cli.run("recover", code=None, env=env), 2)
    assert "--yes" in line
    dry = cli.run("recover", "--dry-run", env=env)
    assert dry.stdout.splitlines() == [
        f"{first}: would resume",
        f"{plain}: would restart",
        f"{named} (named): would restart",
    ]
    assert [r["revision"] for r in _records(cli, ids)] == revisions
    assert [r["status"] for r in _records(cli, ids)] == ["orphaned"] * 3
    assert not os.path.exists(cli.socket_path), "a dry run started a tmux server"

    done = cli.run("recover", "--yes", env=env)
    # One line each, in creation order (the wording is checked last).
    lines = done.stdout.splitlines()
    assert [ln.rsplit(": ", 1)[0] for ln in lines] == [first, plain, f"{named} (named)"]
    after = {r["id"]: r for r in _records(cli, ids)}
    live = cli.tmux("list-sessions", "-F", "#{session_name} #{session_id}").stdout.split("\n")
    assert sorted(filter(None, live)) == sorted(
        f"amux-{s} {after[s]['tmux_session_id']}" for s in ids
    )
    for sid in ids:
        old, new = before[sid], after[sid]
        assert new["status"] == "running"
        assert (new["id"], new["name"], new["cwd"]) == (old["id"], old["name"], old["cwd"])
        assert new["command"] == old["command"]  # the record keeps the command it was given
        assert new["pid"] != old["pid"]
        assert new["started_at"] != old["started_at"]
        # The run before the reboot is kept.
        assert len(new["runs"]) == 1, new["runs"]
        assert new["runs"][0]["started_at"] == old["started_at"]

    # The profiled one runs its resume command (with the extra argument), and gets its secret.
    wait_until(screen_has(cli, first, "Proceed?"), SLOW, "the resumed agent")
    resumed = screen(cli, first)
    assert "resumed" in resumed
    assert argv_line(resumed) == [*PROFILES["myagent"]["resume"][2:], "extra"]
    assert f"env {SECRET} present=True len={len(canary)}" in resumed
    wait_until(screen_has(cli, plain, "plain-run"), SLOW, "the plain command again")
    assert argv_line(screen(cli, plain)) == ["--argv", "--print", "plain-run"]
    wait_until(screen_has(cli, named, "named-run"), SLOW, "the named command again")
    assert cli.show("named")["id"] == named

    # A second recover has nothing to do.
    again = cli.run("recover", "--yes", env=env)
    assert again.stdout == ""
    assert [r["revision"] for r in _records(cli, ids)] == [after[s]["revision"] for s in ids]
    for run in cli.runs:
        assert canary not in run.stdout + run.stderr
    assert lines == [
        f"{first}: resumed",
        f"{plain}: restarted",
        f"{named} (named): restarted",
    ], describe(done)


def test_recover_goes_on_past_a_failure(fleet: Cli) -> None:
    """A masked secret missing from the environment fails that session only (exit 1)."""
    cli = fleet
    first = start(cli, "myagent", env=env_with(FLEET_SECRET="s3cret-value"))
    second = start(cli, "quiet", "--name", "second")
    kill_server(cli.socket_path)
    cli.run("reconcile", "--grace", "0")
    result = cli.run("recover", "--yes", code=1)
    assert result.stdout.splitlines() == [f"{second} (second): restarted"]
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"{first}: failed: ")
    assert SECRET in result.stderr
    assert cli.show(first)["status"] == "orphaned"
    assert cli.show(second)["status"] == "running"
    # With the secret it can be recovered later.
    result = cli.run("recover", "--yes", env=env_with(FLEET_SECRET="s3cret-value"))
    assert cli.show(first)["status"] == "running"
    assert result.stdout.splitlines() == [f"{first}: resumed"]


# --- restart ------------------------------------------------------------------------


def test_restart_needs_masked_secrets_from_the_environment(fleet: Cli) -> None:
    cli = fleet
    sid = start(cli, "myagent", "--name", "sec", env=env_with(FLEET_SECRET="first-value"))
    before = cli.show(sid)
    line = assert_one_line_error(cli.run("restart", "sec", code=None), 2)
    assert SECRET in line
    unchanged = cli.show(sid)
    assert (unchanged["pid"], unchanged["status"], unchanged["runs"]) == (
        before["pid"], "running", [],
    )  # fmt: skip

    new_value = "second-value-longer"
    out = cli.run("restart", "sec", env=env_with(FLEET_SECRET=new_value)).stdout
    assert out.strip() == sid
    after = cli.show(sid)
    assert after["status"] == "running"
    assert after["pid"] != before["pid"]
    assert after["environment"] == {SECRET: "***"}
    wait_until(screen_has(cli, sid, f"len={len(new_value)}"), SLOW, "the new secret")
    assert files_holding(cli.root / ".amux", new_value.encode()) == []


def test_restart_refuses_a_masked_argument(fleet: Cli) -> None:
    cli = fleet
    sid = start(cli, "--secret", "TOK=tok-v4lue-123", "--", *agent("--print", "tok-v4lue-123"))
    assert "***" in cli.show(sid)["command"]
    line = assert_one_line_error(cli.run("restart", sid, code=None), 2)
    assert "secret" in line
    assert "tok-v4lue-123" not in line
    assert cli.show(sid)["runs"] == []


class NoResumeCase(NamedTuple):
    test_id: str
    start_args: tuple[str, ...]


@pytest.mark.parametrize(
    "case",
    [
        NoResumeCase("plain-command", ("--", *agent("--print", "x"))),
        NoResumeCase("profile-without-resume", ("noresume",)),
        NoResumeCase("label-only", ("--agent", "nolabel", "--", *agent("--print", "x"))),
    ],
    ids=lambda c: c.test_id,
)
def test_restart_resume_without_a_resume_command(case: NoResumeCase, fleet: Cli) -> None:
    cli = fleet
    sid = start(cli, *case.start_args)
    before = cli.show(sid)
    assert_one_line_error(cli.run("restart", sid, "--resume", code=None), 2)
    after = cli.show(sid)
    assert (after["pid"], after["status"], after["runs"]) == (before["pid"], "running", [])


def test_restart_of_a_running_session_stops_it_first_and_keeps_the_id(fleet: Cli) -> None:
    cli = fleet
    sid = start(cli, "--name", "again", "--", *agent("--argv", "--print", "run-marker"))
    before = cli.show("again")
    wait_until(screen_has(cli, sid, "run-marker"), SLOW, "the first run")
    assert cli.run("restart", "again").stdout.strip() == sid
    assert gone_within(before["pid"], 10)
    after = cli.show("again")
    assert (after["id"], after["name"], after["status"]) == (sid, "again", "running")
    assert after["pid"] != before["pid"]
    assert [r["status"] for r in after["runs"]] == ["stopped"]
    assert after["runs"][0]["started_at"] == before["started_at"]
    assert cli.tmux_sessions() == [f"amux-{sid}"]
    wait_until(screen_has(cli, sid, "run-marker"), SLOW, "the second run")


# --- activity ----------------------------------------------------------------------


def test_activity_working_then_waiting_then_idle(fleet: Cli) -> None:
    """An agent that prints is working, at its matching prompt waiting; a silent agent
    without a waiting pattern becomes idle after working_seconds."""
    cli = fleet
    busy = start(cli, "busy")
    quiet = start(cli, "quiet")
    wait_until(activity_becomes(cli, busy, "working"), SLOW, "busy to be working")
    row = wait_until(activity_becomes(cli, busy, "waiting"), SLOW, "busy to wait")
    assert row["state"] == "alive"
    shown = cli.show(busy)
    assert shown["activity"] == "waiting"
    at = dt.datetime.fromisoformat(shown["activity_at"].replace("Z", "+00:00"))
    assert abs((dt.datetime.now(dt.UTC) - at).total_seconds()) < 60
    table = cli.run("ls", "--live").stdout.splitlines()
    assert "ACTIVITY" in table[0].split()
    assert "waiting" in next(ln for ln in table if ln.startswith(busy)).split()

    wait_until(activity_becomes(cli, quiet, "idle"), SLOW, "quiet to be idle")
    assert cli.show(quiet)["activity"] == "idle"
    # Plain `ls` stays store-only: no activity column.
    assert "ACTIVITY" not in cli.run("ls").stdout.splitlines()[0]


def test_mark_from_inside_the_agent(fleet: Cli, tmux_log: TmuxLog) -> None:
    """The agent's environment names its session and store; `mark` is seen by ls/show."""
    cli = fleet
    hook = f"{PY} -m amux_tmux mark waiting && echo marked-$((40+2)); exec sleep 600"
    sid = start(cli, "--", "sh", "-c", hook, env=tmux_log.env)
    wait_until(screen_has(cli, sid, "marked-42"), SLOW, "the agent's own mark")
    assert cli.show(sid)["activity"] == "waiting"
    assert live_row(cli, sid)["activity"] == "waiting"

    # From a shell started by amux, through send.
    shell = start(cli, "--name", "shell", "--", "bash", "--norc", "--noprofile")
    cli.run("send", "shell", f"{PY} -m amux_tmux mark idle; echo done-$((1+1))")
    wait_until(screen_has(cli, shell, "done-2"), SLOW, "the shell to run mark")
    assert cli.show("shell")["activity"] == "idle"
    cli.run("send", "shell", "echo $AMUX_SESSION_ID")
    wait_until(lambda: shell in screen(cli, shell).split(), SLOW, "the shell's session id")
    # mark itself starts no tmux process (it runs on every hook).
    code, _out, pid = run_logged(cli, tmux_log, "mark", "working", sid)
    assert code == 0
    assert tmux_log.calls_by(pid) == []
    assert cli.show(sid)["activity"] == "working"


def test_mark_without_a_session(fleet: Cli) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMUX_")}
    line = assert_one_line_error(fleet.run("mark", "waiting", code=None, env=env), 2)
    assert "REF" in line or "session" in line
    assert not (fleet.root / ".amux" / "sessions").exists()


# --- wait ---------------------------------------------------------------------------


class WaitCase(NamedTuple):
    test_id: str
    start_args: tuple[str, ...]
    until: str


WAITS = [
    WaitCase("exited", ("--", *agent("--busy", "1", "--exit", "0")), "exited"),
    WaitCase("waiting", ("noresume",), "waiting"),
    WaitCase("idle", ("quiet",), "idle"),
]


@pytest.mark.parametrize("case", WAITS, ids=lambda c: c.test_id)
def test_wait_until_each_state(case: WaitCase, fleet: Cli) -> None:
    cli = fleet
    sid = start(cli, *case.start_args)
    result = cli.run("wait", sid, "--until", case.until, "--timeout", str(SLOW), timeout=60)
    assert result.returncode == 0
    record = cli.show(sid)
    if case.until == "exited":
        assert (record["status"], record["exit_code"]) == ("completed", 0)
    else:
        assert record["activity"] == case.until


def test_wait_until_working_sees_new_output(fleet: Cli) -> None:
    cli = fleet
    sid = start(cli, "chatty")
    cli.run("wait", sid, "--until", "idle", "--timeout", str(SLOW), timeout=60)
    cli.run("wait", sid, "--until", "working", "--timeout", "0", code=1)
    with background(cli, "wait", sid, "--until", "working", "--timeout", str(SLOW)) as proc:
        assert proc.poll() is None
        cli.run("send", sid, "hello")
        assert proc.wait(timeout=60) == 0
    assert '"hello"' in screen(cli, sid)


def test_wait_exited_notices_a_dead_server(fleet: Cli) -> None:
    """A reboot while a script waits for the agent to exit: the wait ends."""
    cli = fleet
    sid = start(cli, "quiet")
    with background(cli, "wait", sid, "--until", "exited", "--timeout", str(SLOW)) as proc:
        kill_server(cli.socket_path)
        assert proc.wait(timeout=60) == 0


def test_wait_timeout_and_unknown_ref(fleet: Cli) -> None:
    cli = fleet
    sid = start(cli, "quiet")
    began = time.monotonic()
    cli.run("wait", sid, "--until", "waiting", "--timeout", "2", code=1)
    took = time.monotonic() - began
    assert 2.0 <= took < 2.0 + 8.0, took
    assert cli.run("wait", sid, "--until", "exited", "--timeout", "0", code=1).stdout == ""
    result = cli.run("wait", "nosuchsession", "--until", "exited", "--timeout", "1", code=None)
    assert_one_line_error(result, 3)
    result = cli.run("wait", sid, "--until", "exited", "--timeout", "-1", code=None)
    assert_one_line_error(result, 2)


def test_wait_does_not_busy_loop(fleet: Cli, tmux_log: TmuxLog) -> None:
    """Waiting 4 s for a prompt that never comes: a few tmux processes a second at most,
    and well under 20% of one core."""
    cli = fleet
    quiet = start(cli, "neverwaits")
    span = 4.0
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.monotonic()
    code, _out, pid = run_logged(cli, tmux_log, "wait", quiet, "--until", "waiting",
                                 "--timeout", str(span))  # fmt: skip
    took = time.monotonic() - began
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert code == 1
    calls = tmux_log.calls_by(pid)
    assert 1 <= len(calls) <= span * 6, calls  # 0.25 s ticks, one process each
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    assert cpu < 0.2 * took, (cpu, took)


# --- the server agents expect ----------------------------------------------------


@pytest.fixture
def user_server(
    tmp_path: pathlib.Path,
) -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    """The user's own tmux server, on another private socket, with default options."""
    path = str(tmp_path / "user-tmux.sock")
    run = tmux_runner(path)
    made = subprocess.run(
        ["tmux", "-S", path, "-f", "/dev/null", "new-session", "-d", "-s", "mine", "sleep 600"],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    try:
        yield run
    finally:
        kill_server(path)


def test_server_options_for_agents_leave_other_servers_alone(
    fleet: Cli, user_server: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    cli = fleet
    mine_before = (user_server("show", "-s").stdout, user_server("show", "-g").stdout)
    start(cli, "quiet")
    server = cli.tmux("show", "-s").stdout.splitlines()
    assert "focus-events on" in server
    assert "extended-keys on" in server
    limit = cli.tmux("show", "-gv", "history-limit").stdout.strip()
    assert int(limit) >= 50000
    mine_after = (user_server("show", "-s").stdout, user_server("show", "-g").stdout)
    assert mine_after == mine_before
    assert "focus-events off" in mine_after[0].splitlines()
    assert user_server("list-sessions", "-F", "#{session_name}").stdout.split() == ["mine"]


# --- races: recover against recover and reconcile, a storm of hooks -----------------


def _orphans(cli: Cli, count: int) -> list[str]:
    """``count`` sessions, orphaned by a simulated reboot."""
    ids = [
        start(cli, "--name", f"o{n}", "--", "sh", "-c", "echo up; exec cat") for n in range(count)
    ]
    kill_server(cli.socket_path)
    cli.run("reconcile", "--grace", "0")
    assert [cli.show(s)["status"] for s in ids] == ["orphaned"] * count
    return ids


def _each_back_once(cli: Cli, ids: list[str]) -> None:
    live = cli.tmux("list-sessions", "-F", "#{session_name}").stdout.split()
    assert sorted(live) == sorted(f"amux-{s}" for s in ids)
    for sid in ids:
        record = cli.show(sid)
        assert (record["status"], record["state"]) == ("running", "alive"), record
        assert len(record["runs"]) == 1, (sid, record["runs"])


def test_two_recovers_at_once_restart_each_session_once(fleet: Cli) -> None:
    """Two `recover --yes` (a boot script and a person) racing: every orphan is restarted
    once; the loser does not stop and restart what the winner just brought back."""
    cli = fleet
    ids = _orphans(cli, 3)
    with background(cli, "recover", "--yes") as one, background(cli, "recover", "--yes") as two:
        out = [p.communicate(timeout=120) for p in (one, two)]
    assert "Traceback" not in out[0][1] + out[1][1]
    _each_back_once(cli, ids)
    lines = (out[0][0] + out[1][0]).splitlines()
    assert sorted(ln.split(" ", 1)[0] for ln in lines) == sorted(ids), lines


def test_recover_racing_reconcile(fleet: Cli) -> None:
    """A reconcile (cron) during a recover must not orphan or kill what recover starts."""
    cli = fleet
    ids = _orphans(cli, 3)
    with background(cli, "recover", "--yes") as recovering:
        for _ in range(4):
            result = cli.run("reconcile", "--grace", "0", code=None)
            assert result.returncode in (0, 4), describe(result)
        assert recovering.wait(timeout=120) == 0
    cli.run("reconcile", "--grace", "0")
    _each_back_once(cli, ids)
    tags = cli.tmux("list-sessions", "-F", "#{@amux_orphan}").stdout.split()
    assert tags == [], "recover's sessions were tagged as orphans"


def _hook_commands() -> list[str]:
    hooks = json.loads(
        (pathlib.Path(__file__).parents[2] / "examples" / "claude-code-hooks.json").read_text()
    )
    return [h["command"] for event in hooks["hooks"].values() for m in event for h in m["hooks"]]


def test_a_storm_of_hooks(fleet: Cli, tmp_path: pathlib.Path) -> None:
    """Claude Code's hooks (the shipped example) fired many at once from the agent's
    environment: every mark lands (one revision each), readers never see a bad record."""
    cli = fleet
    sid = start(cli, "chatty")
    before = cli.show(sid)["revision"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = env_with(
        AMUX_SESSION_ID=sid,
        AMUX_ROOT=str(cli.root),
        PATH=f"{pathlib.Path(PY).parent}{os.pathsep}{os.environ['PATH']}",
    )
    commands = _hook_commands()
    assert len(commands) == 5
    storm = [commands[n % len(commands)] for n in range(24)]
    procs = [
        subprocess.Popen(["sh", "-c", c], env=env, cwd=elsewhere, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for c in storm
    ]  # fmt: skip
    try:
        for _ in range(3):
            read = cli.run("ls", "--live", "--json")
            assert read.stderr == ""
            assert [r["id"] for r in json.loads(read.stdout)] == [sid]
        results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()
    assert results == [(0, "")] * len(storm)
    after = cli.show(sid)
    assert after["revision"] == before + len(storm)
    assert after["status"] == "running"
    assert after["activity"] in ("working", "waiting", "idle")
    # Nothing was created where the hooks ran.
    assert list(elsewhere.iterdir()) == []


# --- more attacks -------------------------------------------------------------------


def test_restart_of_an_ended_session_keeps_names_unique(fleet: Cli) -> None:
    """A stopped session's name may go to a new session; restarting the old one must not
    make two live sessions with one name (every reference to it would be ambiguous)."""
    cli = fleet
    old = start(cli, "--name", "dup", "--", "sh", "-c", "exec cat")
    cli.run("stop", "dup")
    new = start(cli, "--name", "dup", "--", "sh", "-c", "exec cat")
    result = cli.run("restart", old, code=None)
    live = [r for r in cli.json("ls") if r["name"] == "dup"]
    assert [r["id"] for r in live] == [new], describe(result)
    assert_one_line_error(result, 2)
    assert cli.show("dup")["id"] == new


def test_restart_of_a_completed_session_keeps_its_exit(fleet: Cli) -> None:
    cli = fleet
    sid = start(cli, "--", *agent("--print", "done", "--exit", "3"))
    ended = cli.wait_status(sid, "failed", timeout=SLOW)
    cli.run("restart", sid)
    after = cli.show(sid)
    assert after["status"] in ("running", "failed")
    [run] = after["runs"]
    assert (run["status"], run["exit_code"]) == ("failed", 3)
    assert run["started_at"] == ended["started_at"]


def test_a_profile_command_that_does_not_exist(fleet: Cli) -> None:
    write_config(fleet.root, {"ghost": {"command": ["no-such-agent-binary-xyz", "--flag"]}})
    line = assert_one_line_error(fleet.run("start", "ghost", code=None), 2)
    assert "no-such-agent-binary-xyz" in line
    nothing_created(fleet)


def test_read_only_commands_survive_a_broken_config(fleet: Cli) -> None:
    """Someone is editing .amux/config.yaml (or a pull broke it): `show` and `ls --live`
    still show the sessions (a warning is fine), they only lose the profile's patterns."""
    cli = fleet
    sid = start(cli, "quiet")
    write_config(cli.root, "agents:\n  quiet: [\n")
    shown = cli.run("show", sid, "--json", code=None)
    assert shown.returncode == 0, describe(shown)
    assert json.loads(shown.stdout)["state"] == "alive"
    listed = cli.run("ls", "--live", "--json", code=None)
    assert listed.returncode == 0, describe(listed)
    assert [r["id"] for r in json.loads(listed.stdout)] == [sid]


def test_wait_for_an_activity_of_an_agent_that_exits(fleet: Cli) -> None:
    """The agent exits instead of reaching the state: the wait ends at once with an error
    (not at its timeout)."""
    cli = fleet
    sid = start(cli, "--", *agent("--busy", "1", "--exit", "0"))
    began = time.monotonic()
    result = cli.run("wait", sid, "--until", "waiting", "--timeout", "60", code=None, timeout=90)
    assert time.monotonic() - began < 30
    line = assert_one_line_error(result, result.returncode)
    assert result.returncode != 0
    assert "not running" in line
