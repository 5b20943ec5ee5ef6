"""``stop``, ``rm``, ``prune``, ``logs`` and ``send`` end to end, and exact tmux targets."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
from typing import Any, NamedTuple

import psutil
import pytest

from amux_tmux.manager import Manager, StartSpec
from amux_tmux.model import Status
from amux_tmux.store import FileStore
from tests.cli.conftest import Amux, Cli, assert_one_line_error, describe
from tests.conftest import agent_command, make_record, owned_session, wait_until

#: Reads lines from stdin and answers each one.
ECHO_AGENT = [
    sys.executable,
    "-c",
    "import sys\nprint('echo ready', flush=True)\n"
    "for line in sys.stdin: print('got', line.strip(), flush=True)",
]


def _statuses(cli: Cli) -> dict[str, str]:
    return {r["id"]: r["status"] for r in cli.json("ls", "--all")}


def _log(cli: Cli, sid: str) -> pathlib.Path:
    return cli.root / ".amux" / "logs" / f"{sid}.log"


def _pane_pid(cli: Cli, tmux_session: str) -> int:
    out = cli.tmux("display-message", "-p", "-t", f"={tmux_session}:", "#{pane_pid}")
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


# --- stop ------------------------------------------------------------------------------


def test_stop_ends_the_session(cli: Cli) -> None:
    """stop: record stopped, tmux session gone, hidden from ls; stopping again is a no-op."""
    sid = cli.start(*agent_command(), opts=("--name", "worker"))
    assert cli.run("stop", "worker").stdout == f"{sid} stopped\n"
    assert cli.tmux("has-session", "-t", f"=amux-{sid}").returncode != 0
    record = cli.show(sid)
    assert record["status"] == "stopped"
    assert record["stopped_at"] is not None
    assert record["state"] == "gone"
    assert cli.json("ls") == []
    assert [r["id"] for r in cli.json("ls", "--all")] == [sid]
    again = cli.json("stop", sid, "--timeout", "0")
    assert (again["id"], again["status"], again["stopped_at"]) == (
        sid,
        "stopped",
        record["stopped_at"],
    )


def test_stop_keeps_the_exit_code_of_an_exited_agent(cli: Cli) -> None:
    """stop after the agent exited 5: the record stays failed with exit code 5; the dead
    pane's session goes."""
    sid = cli.start(*agent_command("--exit", "5"))
    cli.wait_status(sid, "failed")
    assert cli.tmux_sessions() == [f"amux-{sid}"]  # the dead pane, kept for attach/logs
    assert cli.run("stop", sid).stdout == f"{sid} failed (exit 5)\n"
    assert cli.tmux_sessions() == []


class FromState(NamedTuple):
    test_id: str
    status: Status
    live: bool  # an owned tmux session runs
    final: str
    exit_code: int | None = None


FROM_STATES = [
    FromState("starting-live", Status.STARTING, True, "stopped"),
    FromState("orphaned-live", Status.ORPHANED, True, "stopped"),
    FromState("failed-live", Status.FAILED, True, "failed", 3),
    FromState("stopping-live", Status.STOPPING, True, "stopped"),
    FromState("running-live", Status.RUNNING, True, "stopped"),
    FromState("orphaned-gone", Status.ORPHANED, False, "stopped"),
    FromState("stopped-gone", Status.STOPPED, False, "stopped"),
    FromState("completed-gone", Status.COMPLETED, False, "completed", 0),
]


@pytest.mark.parametrize("case", FROM_STATES, ids=lambda c: c.test_id)
def test_stop_from_every_state(cli: Cli, case: FromState) -> None:
    """stop works from any status: an interrupted start (``starting``), a record judged
    orphaned or failed whose pane still runs, an interrupted stop, ended records."""
    store = cli.store
    sid = "st0p" + case.test_id.split("-")[0][:4]
    fields: dict[str, Any] = {"exit_code": case.exit_code}
    if case.live:
        # tmux -S does not make the socket's directory (and says nothing): the first server.
        os.makedirs(os.path.dirname(cli.socket_path), mode=0o700, exist_ok=True)
        owned_session(cli.tmux, sid, store.ensure_store_id())
        # As start makes them: the pane stays when its program exits.
        cli.tmux("set-option", "-w", "-t", f"=amux-{sid}:", "remain-on-exit", "on")
        if case.status is not Status.STARTING:  # a start records the pid once running
            pid = _pane_pid(cli, f"amux-{sid}")
            fields |= {"pid": pid, "pid_create_time": psutil.Process(pid).create_time()}
    make_record(store, sid, cli.socket_path, case.status, **fields)
    result = cli.run("stop", sid, "--timeout", "2", code=None)
    assert result.returncode == 0, describe(result)
    code = "" if case.exit_code is None else f" (exit {case.exit_code})"
    assert result.stdout == f"{sid} {case.final}{code}\n"
    assert cli.tmux_sessions() == []
    record = cli.show(sid)
    assert (record["status"], record["exit_code"]) == (case.final, case.exit_code)
    assert record["stopped_at"] is not None
    assert cli.run("stop", sid).stdout == result.stdout  # idempotent


class BadRef(NamedTuple):
    test_id: str
    ref: str
    code: int
    message: str


BAD_REFS = [
    BadRef("unknown", "nosuch1", 3, "no session matches 'nosuch1'"),
    BadRef("invalid", "no/such", 2, "invalid session id 'no/such'"),
]


@pytest.mark.parametrize("case", BAD_REFS, ids=lambda c: c.test_id)
def test_stop_many_refs_with_one_bad(cli: Cli, case: BadRef) -> None:
    """stop A BAD B: A and B are stopped, the bad ref is one error line, its exit code."""
    first = cli.start(*agent_command())
    second = cli.start(*agent_command())
    result = cli.run("stop", first, case.ref, second, "--timeout", "0", code=None)
    assert result.returncode == case.code, describe(result)
    assert result.stdout == f"{first} stopped\n{second} stopped\n"
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"amux-tmux: error: {case.message}")
    assert cli.tmux_sessions() == []
    assert _statuses(cli) == {first: "stopped", second: "stopped"}


def test_interrupted_stop_is_finished_by_reconcile(cli: Cli) -> None:
    """A stop killed after it wrote ``stopping``: reconcile (past its grace) kills the
    session and records ``stopped``; one whose session is already gone, likewise."""
    live = cli.start(*agent_command())
    gone = cli.start(*agent_command())
    store = cli.store
    for sid in (live, gone):
        store.update(sid, lambda s: s.transition(Status.STOPPING))
    cli.tmux("kill-session", "-t", f"=amux-{gone}")
    cli.run("reconcile")  # within the grace period: left alone
    assert _statuses(cli) == {live: "stopping", gone: "stopping"}
    assert cli.tmux_sessions() == [f"amux-{live}"]

    out = cli.run("reconcile", "--grace", "0").stdout
    assert "2 marked stopped" in out
    assert _statuses(cli) == {live: "stopped", gone: "stopped"}
    assert cli.tmux_sessions() == []
    assert cli.run("reconcile", "--grace", "0").stdout == ""  # quiet when all is well


def test_exact_targets_never_prefix_match(
    cli: Cli, manager: Manager, store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With amux-abc12 and amux-abc1234 live, the CLI's stop abc12 touches only abc12."""
    ids = iter(["abc1234", "abc12"])
    monkeypatch.setattr(store, "new_id", lambda: next(ids))
    for _ in range(2):
        manager.start(StartSpec(command=agent_command()))
    assert sorted(cli.tmux_sessions()) == ["amux-abc12", "amux-abc1234"]

    line = assert_one_line_error(cli.run("stop", "abc1", code=None), 2)
    assert line.endswith("abc12, abc1234")
    assert cli.show("abc123")["id"] == "abc1234"  # a unique prefix

    assert cli.run("stop", "abc12", "--timeout", "0").stdout == "abc12 stopped\n"
    assert cli.tmux_sessions() == ["amux-abc1234"]
    assert cli.show("abc1234")["state"] == "alive"
    cli.run("rm", "abc12")
    assert [r["id"] for r in cli.json("ls", "--all")] == ["abc1234"]
    cli.run("rm", "abc1", "--force")  # now unique
    assert cli.tmux_sessions() == []


def test_two_concurrent_stops_both_succeed(cli: Cli) -> None:
    """Two stops at once: both succeed (the second sees an ended record)."""
    sid = cli.start(*agent_command())
    procs = [
        subprocess.Popen(cli.argv("stop", sid), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert out.decode() == f"{sid} stopped\n"
    assert cli.tmux_sessions() == []


# --- rm and prune ----------------------------------------------------------------------


def test_rm_refuses_a_live_session_without_force(cli: Cli) -> None:
    """rm of a running session: exit 2, nothing changes; rm --force kills it and removes
    the record and the log."""
    sid = cli.start(*agent_command())
    wait_until(lambda: _log(cli, sid).exists(), what="the log")
    line = assert_one_line_error(cli.run("rm", sid, code=None), 2)
    assert "still running" in line
    assert "--force" in line
    assert cli.show(sid)["status"] == "running"
    assert cli.tmux_sessions() == [f"amux-{sid}"]

    assert cli.run("rm", sid, "--force").stdout == f"{sid}\n"
    assert cli.tmux_sessions() == []
    assert not _log(cli, sid).exists()
    assert_one_line_error(cli.run("show", sid, code=None), 3)
    assert cli.json("ls", "--all") == []


def test_rm_of_ended_sessions_needs_no_force(cli: Cli) -> None:
    """Stopped and exited sessions go by plain rm, several at once (a dead pane goes too);
    a bad ref among them is reported and the others still go."""
    stopped = cli.start(*agent_command())
    exited = cli.start(*agent_command("--exit", "0"))
    cli.run("stop", stopped, "--timeout", "0")
    cli.wait_status(exited, "completed")
    result = cli.run("rm", "--json", stopped, "nosuch1", exited, code=3)
    removed = [json.loads(doc) for doc in re.split(r"(?<=\})\n(?=\{)", result.stdout.strip())]
    assert [(r["id"], r["status"]) for r in removed] == [
        (stopped, "stopped"),
        (exited, "completed"),
    ]
    assert result.stderr == "amux-tmux: error: no session matches 'nosuch1'\n"
    assert cli.tmux_sessions() == []
    assert cli.json("ls", "--all") == []
    assert not _log(cli, exited).exists()


def _unreachable_tmux(directory: pathlib.Path) -> dict[str, str]:
    """An environment whose tmux answers -V but cannot reach any server."""
    directory.mkdir()
    script = directory / "tmux"
    script.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do [ "$a" = "-V" ] && { echo "tmux 3.3a"; exit 0; }; done\n'
        'echo "error connecting to /tmp/x (Permission denied)" >&2\nexit 1\n'
    )
    script.chmod(0o755)
    return {**os.environ, "PATH": f"{directory}{os.pathsep}{os.environ['PATH']}"}


def test_rm_force_with_tmux_unreachable_keeps_a_live_agent_s_record(
    cli: Cli, tmp_path: pathlib.Path
) -> None:
    """tmux cannot be asked: rm refuses (exit 5); rm --force refuses while the recorded
    agent pid lives, and removes the record of one whose agent is gone."""
    alive = cli.start(*agent_command())
    dead = "dead01"
    make_record(cli.store, dead, cli.socket_path, Status.RUNNING, pid=None)
    env = _unreachable_tmux(tmp_path / "fake-bin")
    line = assert_one_line_error(cli.run("rm", "--force", alive, code=None, env=env), 5)
    assert "error connecting" in line
    assert "still runs" in line
    assert_one_line_error(cli.run("rm", dead, code=None, env=env), 5)
    assert cli.run("rm", "--force", dead, env=env).stdout == f"{dead}\n"
    assert sorted(_statuses(cli)) == [alive]
    assert cli.tmux_sessions() == [f"amux-{alive}"]


def test_prune_removes_ended_sessions_only(cli: Cli, amux: Amux) -> None:
    """prune --dry-run lists ended sessions and removes nothing; prune removes their
    records, logs and dead tmux sessions; live sessions keep all three."""
    running = cli.start(*agent_command())
    completed = cli.start(*agent_command("--exit", "0"))
    failed = cli.start(*agent_command("--exit", "3"))
    stopped = cli.start(*agent_command())
    every = {running, completed, failed, stopped}
    wait_until(lambda: all(_log(cli, s).exists() for s in every), what="every log")
    cli.run("stop", stopped, "--timeout", "0")
    cli.wait_status(completed, "completed")
    cli.wait_status(failed, "failed")
    assert sorted(cli.tmux_sessions()) == sorted(f"amux-{s}" for s in (running, completed, failed))

    code, out, _ = amux("prune", "--dry-run")
    assert code == 0
    assert sorted(out.splitlines()) == sorted(
        [
            f"would remove {completed} (completed)",
            f"would remove {failed} (failed)",
            f"would remove {stopped} (stopped)",
        ]
    )
    assert json.loads(amux("prune", "--dry-run", "--json")[1]) == {
        "dry_run": True,
        "ids": [completed, failed, stopped],
    }
    assert set(_statuses(cli)) == every

    code, out, _ = amux("prune", "--json")
    assert code == 0
    assert sorted(json.loads(out)["ids"]) == sorted([completed, failed, stopped])
    assert _statuses(cli) == {running: "running"}
    assert cli.tmux_sessions() == [f"amux-{running}"]
    assert [s for s in every if _log(cli, s).exists()] == [running]
    assert amux("prune")[1] == ""  # nothing left to prune


# --- send ------------------------------------------------------------------------------


def _pastes(cli: Cli, sid: str) -> list[str]:
    """The bracketed agent's reports (``paste ...``, ``enter``, ``key ...``), in order."""
    text = cli.run("logs", sid).stdout
    return [ln for ln in text.splitlines() if ln.startswith(("paste ", "enter", "key "))]


def _bracketed(cli: Cli) -> str:
    sid = cli.start(*agent_command("--bracketed"))
    # The agent switched bracketed paste on (after putting its terminal in raw mode).
    wait_until(
        lambda: "\x1b[?2004h" in cli.run("logs", sid, "--raw").stdout,
        what="the agent to ask for bracketed paste",
    )
    return sid


def test_send_multi_line_text_arrives_as_one_paste(cli: Cli) -> None:
    """A two-line prompt is ONE bracketed paste, then Enter; not two submitted lines."""
    sid = _bracketed(cli)
    result = cli.run("send", sid, "line1\nline2")
    assert (result.stdout, result.stderr) == ("", "")
    expected = ['paste "line1\\nline2"', "enter"]
    wait_until(lambda: _pastes(cli, sid) == expected, timeout=10, what=str(expected))


class Literal(NamedTuple):
    test_id: str
    argv: list[str]
    text: str


LITERALS = [
    Literal("ends-in-semicolon", ["--", "x;"], "x;"),
    Literal("tmux-command-words", ["--", "kill-server;", "ls"], "kill-server; ls"),
    Literal("starts-with-dash", ["--", "-n", "--help"], "-n --help"),
    Literal("formats-and-shell", ["#{pane_id} $(touch X) #(touch Y) 'q' \"d\" \\"], ""),
]


def test_send_text_arrives_literally(cli: Cli) -> None:
    """Text that tmux would parse (a trailing ``;``, ``#{}`` formats) or argparse would
    (leading ``-`` after ``--``) arrives as typed, one paste each; the tmux server
    survives and nothing in the text is run."""
    sid = _bracketed(cli)
    expected: list[str] = []
    for case in LITERALS:
        cli.run("send", sid, *case.argv)
        expected += [f"paste {json.dumps(case.text or case.argv[0])}", "enter"]
        wait_until(lambda: _pastes(cli, sid) == expected, timeout=10, what=case.test_id)
    assert cli.tmux_sessions() == [f"amux-{sid}"]
    assert not (cli.root / "X").exists()
    assert not (cli.root / "Y").exists()


def test_send_from_file_stdin_and_no_enter(cli: Cli, amux: Amux) -> None:
    """--file and - (stdin) send their text whole; --no-enter sends no Enter; --json
    prints what was sent."""
    sid = _bracketed(cli)
    prompt = cli.root / "prompt.md"
    prompt.write_text("from\nfile")
    cli.run("send", sid, "--file", str(prompt))
    cli.run("send", sid, "-", stdin="from\nstdin")
    code, out, err = amux("send", sid, "--no-enter", "--json", "typed")
    assert (code, err) == (0, "")
    assert json.loads(out) == {"id": sid, "sent": 5, "enter": False}
    cli.run("send", sid, "--", "more")
    expected = [
        'paste "from\\nfile"',
        "enter",
        'paste "from\\nstdin"',
        "enter",
        'paste "typed"',
        'paste "more"',  # no Enter came between the two
        "enter",
    ]
    wait_until(lambda: _pastes(cli, sid) == expected, timeout=10, what=str(expected))


def test_send_reaches_an_agent_reading_stdin(cli: Cli) -> None:
    """An agent without bracketed paste reads the words joined by spaces, then Enter;
    --no-enter types without submitting; options may come before or after the text."""
    sid = cli.start(*ECHO_AGENT)
    wait_until(cli.logs_contain(sid, "echo ready"), what="echo agent")
    cli.run("send", sid, "hello", "world; echo $HOME")
    wait_until(cli.logs_contain(sid, "got hello world; echo $HOME"), what="the answer")
    cli.run("send", sid, "--no-enter", "partial")
    wait_until(cli.logs_contain(sid, "partial"), what="typed text")
    assert "got partial" not in cli.run("logs", sid).stdout
    cli.run("send", sid, "--", "-rest")  # text that looks like an option
    wait_until(cli.logs_contain(sid, "got partial-rest"), what="the completed line")


def test_send_to_an_exited_agent_fails(cli: Cli) -> None:
    """send to a session whose agent exited: exit 1, one line, nothing typed anywhere."""
    sid = cli.start(*agent_command("--exit", "0"))
    cli.wait_status(sid, "completed")
    line = assert_one_line_error(cli.run("send", sid, "hi", code=None), 1)
    assert "is not running (status completed)" in line
    line = assert_one_line_error(cli.run("send", "--json", sid, "hi", code=None), 1)
    assert sid in line


# --- logs ------------------------------------------------------------------------------


def test_logs_outlive_the_session(cli: Cli) -> None:
    """The log (0600) is kept after stop, when tmux no longer has the session."""
    sid = cli.start(*agent_command("--print", "kept-after-stop"))
    wait_until(cli.logs_contain(sid, "kept-after-stop"), what="the agent's output")
    cli.run("stop", sid)
    assert cli.tmux_sessions() == []
    logs = cli.run("logs", sid).stdout
    assert logs.startswith("agent ready pid=")
    assert "kept-after-stop\n" in logs
    assert _log(cli, sid).stat().st_mode & 0o777 == 0o600


def test_logs_of_a_redrawing_program_show_its_last_frame(cli: Cli, amux: Amux) -> None:
    """A line redrawn in place 50 times reads as its last frame; --raw keeps the escapes."""
    sid = cli.start(*agent_command("--redraw", "50", "--print", "header"))
    wait_until(cli.logs_contain(sid, "frame 49"), what="the last frame")
    lines = cli.run("logs", sid).stdout.splitlines()
    assert lines[1:] == ["header", "frame 49"]
    raw = amux("logs", sid, "--raw")[1]  # in process: no newline translation of \r
    assert "\r\x1b[2Kframe 0\r\x1b[2Kframe 1" in raw
    assert "frame 48" in raw


def test_logs_of_an_exited_agent_have_no_dead_pane_padding(cli: Cli) -> None:
    """Neither the log nor, without a log, the dead pane's capture shows padding or
    tmux's "Pane is dead" banner."""
    sid = cli.start(*agent_command("--print", "last words", "--exit", "0"))
    cli.wait_status(sid, "completed")
    wait_until(cli.logs_contain(sid, "last words"), what="the output in the log")
    from_log = cli.run("logs", sid).stdout
    assert from_log.endswith("\nlast words\n")
    _log(cli, sid).unlink()  # what is left is the pane
    from_pane = cli.run("logs", sid).stdout
    assert from_pane.endswith("\nlast words\n"), from_pane
    assert "agent ready" in from_pane
    assert "Pane is dead" not in from_pane
    assert cli.run("logs", sid, "-n", "1").stdout == "last words\n"


def test_logs_last_lines_and_json(cli: Cli, amux: Amux) -> None:
    """logs -n N prints the last N lines only; -n 0 prints nothing; --json is JSON."""
    sid = cli.start("sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; sleep 600")
    wait_until(cli.logs_contain(sid, "line5"), what="line5")
    assert amux("logs", sid, "-n", "2")[1] == "line4\nline5\n"
    assert amux("logs", sid, "--lines", "0")[1] == ""
    assert amux("logs", sid)[1] == "".join(f"line{i}\n" for i in range(1, 6))
    code, out, err = amux("logs", sid, "-n", "2", "--json")
    assert (code, err) == (0, "")
    assert json.loads(out) == {"id": sid, "lines": ["line4", "line5"]}


def test_logs_without_log_or_session_fails(cli: Cli) -> None:
    """A record with neither a kept log nor a tmux session: exit 1, one line."""
    make_record(cli.store, "nolog1", cli.socket_path, Status.STOPPED)
    line = assert_one_line_error(cli.run("logs", "nolog1", code=None), 1)
    assert "nolog1 is not running" in line


def test_logs_follow_until_the_agent_exits(cli: Cli) -> None:
    """logs -f prints what appears and returns when the agent exits; the exit is recorded;
    with --json each line is a JSON object."""
    sid = cli.start("sh", "-c", "echo one; sleep 0.3; echo two; sleep 0.3; echo three; exit 4")
    result = cli.run("logs", sid, "-f", timeout=20)
    assert result.stdout.split()[:3] == ["one", "two", "three"], describe(result)
    cli.wait_status(sid, "failed")
    assert cli.show(sid)["exit_code"] == 4
    followed = cli.run("logs", sid, "-f", "--json", timeout=20).stdout
    assert [json.loads(line) for line in followed.splitlines()] == [
        {"line": "one"},
        {"line": "two"},
        {"line": "three"},
    ]


def test_logs_follow_shows_a_line_redrawn_while_following_as_its_last_frame(cli: Cli) -> None:
    """logs -f started before a progress line is redrawn in place prints its last state
    once, not every frame glued together."""
    sid = cli.start(
        "sh", "-c",
        'sleep 1; for i in 1 2 3; do printf "\\r\\033[2Kframe $i"; sleep 0.1; done; echo; exit 0',
    )  # fmt: skip
    result = cli.run("logs", sid, "-f", timeout=20)
    assert result.stdout == "frame 3\n", describe(result)
