"""``start``, ``ls`` and ``show`` end to end on a real tmux server."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shlex
import subprocess
import sys

import psutil
import pytest

from amux_tmux.manager import Manager, StartSpec
from amux_tmux.model import Status
from tests.cli.conftest import Cli
from tests.conftest import agent_command, wait_until


def _rows(table: str) -> list[list[str]]:
    return [line.split() for line in table.splitlines()]


def test_start_then_ls_show_logs(cli: Cli) -> None:
    """start prints the id; ls (table, JSON, --live) and show agree with tmux."""
    sid = cli.start(
        *agent_command(),
        opts=("--name", "review", "--agent", "claude", "--workspace", "ws-1", "-e", "MODE=x"),
    )
    assert cli.tmux_sessions() == [f"amux-{sid}"]

    table = _rows(cli.run("ls").stdout)
    assert table[0] == ["ID", "NAME", "AGENT", "STATUS", "AGE", "COMMAND"]
    assert table[1][:4] == [sid, "review", "claude", "running"]
    # The table shortens long commands to 60 characters ("..."), so compare the start.
    shown = " ".join(table[1][5:])
    full = shlex.join(agent_command())
    assert full == shown or (shown.endswith("...") and full.startswith(shown[:-3]))
    assert len(table) == 2
    assert cli.run("list").stdout.split()[:10] == cli.run("ls").stdout.split()[:10]

    [record] = cli.json("ls")
    assert record["id"] == sid
    assert record["status"] == "running"
    assert (record["name"], record["agent_id"], record["workspace_id"]) == (
        "review",
        "claude",
        "ws-1",
    )
    assert record["environment"] == {"MODE": "x"}
    assert record["command"] == agent_command()
    assert record["tmux_session"] == f"amux-{sid}"
    assert record["tmux_socket"] == cli.socket_path
    assert record["cwd"] == str(cli.root)
    assert "state" not in record  # tmux was not asked

    live = _rows(cli.run("ls", "--live").stdout)
    assert live[0] == ["ID", "NAME", "AGENT", "STATUS", "STATE", "AGE", "COMMAND"]
    assert live[1][:5] == [sid, "review", "claude", "running", "alive"]
    assert cli.json("ls", "--live")[0]["state"] == "alive"

    shown = cli.show("review")  # by name
    assert shown["id"] == sid
    assert shown["state"] == "alive"
    assert isinstance(shown["pid"], int)
    assert shown["pane_id"].startswith("%")
    assert cli.show(sid[:4])["id"] == sid  # by unique prefix
    # --json also works as a global option, before the command.
    assert json.loads(cli.run("--json", "show", sid).stdout)["id"] == sid
    text = cli.run("show", sid).stdout
    assert f"id: {sid}\n" in text
    assert "state: alive\n" in text
    assert "  MODE=x\n" in text

    wait_until(cli.logs_contain(sid, "agent ready"), what="agent output")
    assert f"agent ready pid={shown['pid']}" in cli.run("logs", sid).stdout
    assert cli.run("logs", sid, "-n", "1").stdout.strip().startswith("agent ready")


def test_start_json_prints_the_record(cli: Cli, tmp_path: pathlib.Path) -> None:
    """start --json prints the running record; --cwd and public -e reach the agent."""
    work = tmp_path / "work"
    work.mkdir()
    record = cli.json(
        "start",
        "--cwd",
        str(work),
        "-e",
        "MODE=review",
        "--",
        "sh",
        "-c",
        'echo "cwd=$(pwd) mode=$MODE id=$AMUX_SESSION_ID"; sleep 600',
    )
    assert record["status"] == "running"
    assert record["cwd"] == str(work)
    assert record["revision"] == 2
    expected = f"cwd={work} mode=review id={record['id']}"
    wait_until(cli.logs_contain(record["id"], expected), what=expected)


@pytest.mark.parametrize(("code", "status"), [(0, "completed"), (3, "failed")])
def test_agent_exit_is_seen_by_show(cli: Cli, code: int, status: str) -> None:
    """An agent exiting 0 is completed, exiting 3 is failed with exit_code 3."""
    sid = cli.start(*agent_command("--exit", str(code)))
    final = cli.wait_status(sid, status)
    assert final["exit_code"] == code
    assert final["state"] == "exited"  # remain-on-exit keeps the dead pane
    assert "agent ready" in cli.run("logs", sid).stdout
    assert cli.json("ls") == []  # ended: hidden without --all
    [listed] = cli.json("ls", "--all")
    assert (listed["status"], listed["exit_code"]) == (status, code)


def test_ls_filters_and_live_state(cli: Cli) -> None:
    """--all, --status, --agent, --workspace, --limit/--offset and the STATE column."""
    done = cli.start(*agent_command("--exit", "0"), opts=("--agent", "claude"))
    running = cli.start(*agent_command(), opts=("--agent", "codex", "--workspace", "w2"))
    stopped = cli.start(*agent_command(), opts=("--agent", "claude"))
    cli.run("stop", stopped, "--timeout", "0")
    cli.wait_status(done, "completed")

    def ids(*args: str) -> list[str]:
        return [r["id"] for r in cli.json("ls", *args)]

    assert ids() == [running]
    assert ids("--all") == [done, running, stopped]  # sorted by creation
    assert ids("-a", "--agent", "claude") == [done, stopped]
    assert ids("--workspace", "w2") == [running]
    assert ids("--status", "completed") == [done]  # a status filter includes ended ones
    assert ids("--status", "running", "--status", "stopped") == [running, stopped]
    assert ids("--all", "--limit", "1", "--offset", "1") == [running]
    assert ids("--all", "--offset", "5") == []

    states = {row[0]: (row[3], row[4]) for row in _rows(cli.run("ls", "-a", "--live").stdout)[1:]}
    assert states == {
        done: ("completed", "exited"),
        running: ("running", "alive"),
        stopped: ("stopped", "gone"),
    }


def test_ls_on_an_empty_root(cli: Cli) -> None:
    """No records: the table is the header alone, JSON is an empty array."""
    assert cli.run("ls").stdout.split() == ["ID", "NAME", "AGENT", "STATUS", "AGE", "COMMAND"]
    assert cli.json("ls", "--all", "--live") == []


def test_missing_agent_binary_fails_the_session(cli: Cli) -> None:
    """A command that does not exist: start succeeds, the session ends failed with 127."""
    sid = cli.start("definitely-not-a-command-xyz")
    final = cli.wait_status(sid, "failed")
    assert final["exit_code"] == 127
    assert "command not found" in cli.run("logs", sid).stdout


def test_unreaped_agent_is_still_recorded(
    manager: Manager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tmux 3.3a sometimes misses the SIGCHLD of an agent that exits at once (seen here
    about once in 20 fresh servers): ``#{pane_dead}`` is 1, ``#{pane_dead_status}`` stays
    empty and the agent is a zombie until another child of the server ends. Reproduced
    deterministically: the record's pid is a real zombie that exited 3, and tmux's listing
    reports its pane dead without a status. The exit status is there to read in
    ``/proc/PID/stat``; a look must record the agent as ended, not wait forever.
    """
    session = manager.start(StartSpec(command=agent_command()))
    [pane] = manager.backend.list_live().values()
    zombie = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    try:
        wait_until(
            lambda: psutil.Process(zombie.pid).status() == psutil.STATUS_ZOMBIE, what="zombie"
        )
        created = psutil.Process(zombie.pid).create_time()
        manager.store.update(
            session.id, lambda s: s.evolve(pid=zombie.pid, pid_create_time=created)
        )
        unknown = {
            f.name: None
            for f in dataclasses.fields(pane)
            if f.name in ("pane_dead_status", "pane_dead_signal", "pane_dead_time")
        }
        dead = dataclasses.replace(pane, pane_pid=zombie.pid, pane_dead=True, **unknown)
        monkeypatch.setattr(manager.backend, "list_live", lambda: {pane.session_name: dead})

        def ended() -> bool:
            return manager.look(session.id).session.status.ended

        wait_until(ended, timeout=5, what="the exited agent to be recorded")
        final = manager.look(session.id).session
        assert final.status is Status.FAILED
        assert final.exit_code == 3  # read from /proc/PID/stat (field 52)
    finally:
        zombie.wait()
