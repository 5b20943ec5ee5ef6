"""``stop``, ``rm``, ``logs`` and ``send`` end to end, and exact tmux targets."""

from __future__ import annotations

import subprocess
import sys

import pytest

from amux_tmux.manager import Manager, StartSpec
from amux_tmux.store import FileStore
from tests.cli.conftest import Cli, assert_one_line_error, describe
from tests.conftest import agent_command, wait_until

#: Reads lines from stdin and answers each one.
ECHO_AGENT = [
    sys.executable,
    "-c",
    "import sys\nprint('echo ready', flush=True)\n"
    "for line in sys.stdin: print('got', line.strip(), flush=True)",
]


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
    assert (again["id"], again["status"]) == (sid, "stopped")


def test_stop_keeps_the_exit_code_of_an_exited_agent(cli: Cli) -> None:
    """stop after the agent exited 5: the record stays failed with exit code 5."""
    sid = cli.start(*agent_command("--exit", "5"))
    cli.wait_status(sid, "failed")
    assert cli.run("stop", sid).stdout == f"{sid} failed (exit 5)\n"
    assert cli.tmux_sessions() == []


def test_rm_refuses_a_live_session_without_force(cli: Cli) -> None:
    """rm of a running session: exit 2, nothing changes; rm --force kills and deletes."""
    sid = cli.start(*agent_command())
    line = assert_one_line_error(cli.run("rm", sid, code=None), 2)
    assert "still running" in line
    assert "--force" in line
    assert cli.show(sid)["status"] == "running"
    assert cli.tmux_sessions() == [f"amux-{sid}"]

    assert cli.run("rm", sid, "--force").stdout == f"{sid}\n"
    assert cli.tmux_sessions() == []
    assert_one_line_error(cli.run("show", sid, code=None), 3)
    assert cli.json("ls", "--all") == []


def test_rm_of_ended_sessions_needs_no_force(cli: Cli) -> None:
    """A stopped or exited session is removed by plain rm (a dead pane goes with it)."""
    stopped = cli.start(*agent_command())
    exited = cli.start(*agent_command("--exit", "0"))
    cli.run("stop", stopped, "--timeout", "0")
    cli.wait_status(exited, "completed")
    assert cli.run("rm", stopped).stdout == f"{stopped}\n"
    removed = cli.json("rm", exited)
    assert (removed["id"], removed["status"]) == (exited, "completed")
    assert cli.tmux_sessions() == []
    assert cli.json("ls", "--all") == []


def test_send_reaches_an_agent_reading_stdin(cli: Cli) -> None:
    """send types the text and Enter; --no-enter types without submitting."""
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
    sid = cli.start(*agent_command("--exit", "0"))
    cli.wait_status(sid, "completed")
    line = assert_one_line_error(cli.run("send", sid, "hi", code=None), 1)
    assert "has exited" in line


def test_logs_last_lines(cli: Cli) -> None:
    """logs -n N prints the last N lines only; -n 0 prints nothing."""
    sid = cli.start("sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; sleep 600")
    wait_until(cli.logs_contain(sid, "line5"), what="line5")
    assert cli.run("logs", sid, "-n", "2").stdout.split() == ["line4", "line5"]
    assert cli.run("logs", sid, "--lines", "0").stdout == ""
    assert cli.run("logs", sid).stdout.split()[:5] == [f"line{i}" for i in range(1, 6)]


def test_logs_of_a_session_without_tmux_session_fails(cli: Cli) -> None:
    sid = cli.start(*agent_command())
    cli.run("stop", sid, "--timeout", "0")
    line = assert_one_line_error(cli.run("logs", sid, code=None), 1)
    assert "no tmux session" in line


def test_logs_follow_until_the_agent_exits(cli: Cli) -> None:
    """logs -f prints what appears and returns when the agent exits; the exit is recorded."""
    sid = cli.start("sh", "-c", "echo one; sleep 0.3; echo two; sleep 0.3; echo three; exit 4")
    result = cli.run("logs", sid, "-f", timeout=20)
    lines = result.stdout.split()
    assert lines[:3] == ["one", "two", "three"], describe(result)
    record = cli.wait_status(sid, "failed")
    assert record["exit_code"] == 4


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
    assert "abc12, abc1234" in line
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
