"""The canary: a secret given to ``start`` reaches the agent and nothing else."""

from __future__ import annotations

import os
import pathlib
import stat
import uuid

from tests.cli.conftest import Cli, assert_one_line_error
from tests.conftest import agent_command, wait_until
from tests.helpers import procs_holding


def _files_holding(root: pathlib.Path, needle: bytes) -> list[str]:
    """Return every regular file under ``root`` whose bytes contain ``needle``."""
    found = []
    for path in root.rglob("*"):
        try:
            if not stat.S_ISREG(path.lstat().st_mode):
                continue  # a FIFO would block, a symlink is not ours
            if needle in path.read_bytes():
                found.append(str(path))
        except FileNotFoundError:
            continue
    return found


def _assert_nowhere_but_the_agent(cli: Cli, sid: str, pid: int, canaries: list[str]) -> None:
    pane = cli.show(sid)["pane_id"]
    global_env = cli.tmux("show-environment", "-g")
    session_env = cli.tmux("show-environment", "-t", f"=amux-{sid}")
    start_command = cli.tmux("display", "-p", "-t", pane, "#{pane_start_command}")
    assert global_env.returncode == session_env.returncode == start_command.returncode == 0
    # The oracles see what they should: the launcher as the pane's command; the agent's
    # environment (public values and the session's id) in the agent alone, through the
    # launch spec, not in tmux's session environment.
    assert "from amux_tmux.launch import main" in start_command.stdout  # the fixed launcher
    with open(f"/proc/{pid}/environ", "rb") as f:
        agent_env = f.read().split(b"\0")
    assert f"AMUX_SESSION_ID={sid}".encode() in agent_env
    assert b"MODE=visible" in agent_env
    assert "MODE=visible" not in session_env.stdout
    logs = cli.run("logs", sid).stdout
    for canary in canaries:
        needle = canary.encode()
        assert _files_holding(cli.root / ".amux", needle) == []
        assert canary not in global_env.stdout
        assert canary not in session_env.stdout
        assert canary not in start_command.stdout
        assert procs_holding(needle, "cmdline") == []
        # Only the agent's environment holds it (not the tmux server, not a shell).
        assert procs_holding(needle, "environ", skip={pid}) == []
        assert canary not in logs
        for run in cli.runs:
            assert canary not in run.stdout, run.args
            assert canary not in run.stderr, run.args


def test_canary_reaches_only_the_agent(cli: Cli) -> None:
    """-e secrets: in the agent's /proc environ; absent from disk, tmux, argv, output, logs."""
    token = uuid.uuid4().hex
    canary = f"sk-ant-CANARY-{token}"
    by_value = f"ghp_CANARY{token}"  # harmless name, credential-looking value
    password = f"pw{token}"
    url = f"postgres://app:{password}@db.internal/app"
    sid = cli.start(
        *agent_command("--env", "ANTHROPIC_API_KEY", "--env", "EXTRA", "--env", "DATABASE_URL"),
        opts=(
            "-e", f"ANTHROPIC_API_KEY={canary}",
            "-e", f"EXTRA={by_value}",
            "-e", f"DATABASE_URL={url}",
            "-e", "MODE=visible",
            "--name", "canary",
        ),
    )  # fmt: skip
    record = cli.show("canary")
    shown_url = record["environment"].pop("DATABASE_URL")
    assert shown_url in ("***", "postgres://app:***@db.internal/app")  # masked whole, or
    assert record["environment"] == {  # its password alone
        "ANTHROPIC_API_KEY": "***",
        "EXTRA": "***",
        "MODE": "visible",
    }
    pid = record["pid"]
    wait_until(
        cli.logs_contain(sid, f"env ANTHROPIC_API_KEY present=True len={len(canary)}"),
        what="the agent to report its environment",
    )
    logs = cli.run("logs", sid).stdout
    assert f"env EXTRA present=True len={len(by_value)}" in logs
    assert f"env DATABASE_URL present=True len={len(url)}" in logs
    with open(f"/proc/{pid}/environ", "rb") as f:
        environ = f.read().split(b"\0")
    assert f"ANTHROPIC_API_KEY={canary}".encode() in environ
    assert f"EXTRA={by_value}".encode() in environ
    assert f"DATABASE_URL={url}".encode() in environ
    assert not list((cli.root / ".amux" / "run").iterdir())  # the FIFO is gone

    # Every reading command, in every format, then the whole lifecycle.
    cli.run("ls")
    cli.run("ls", "--all", "--live", "--json")
    cli.run("show", sid)
    cli.run("logs", sid, "-n", "5")
    _assert_nowhere_but_the_agent(cli, sid, pid, [canary, by_value, password])
    cli.run("stop", sid)
    cli.run("show", sid, "--json")
    cli.run("rm", sid)
    for secret in (canary, by_value, password):
        assert _files_holding(cli.root / ".amux", secret.encode()) == []
        for run in cli.runs:
            assert secret not in run.stdout + run.stderr


def test_env_key_alone_takes_the_caller_s_value(cli: Cli) -> None:
    """-e KEY copies the caller's value to the agent; the tmux server never gets it."""
    token = uuid.uuid4().hex
    canary = f"sk-CANARY{token}"
    stray = f"xoxb-CANARY-{token}"  # in the caller's env under a harmless name, not passed
    env = {**os.environ, "OPENAI_API_KEY": canary, "UNRELATED": stray}
    sid = cli.start(
        *agent_command("--env", "OPENAI_API_KEY"),
        opts=("-e", "OPENAI_API_KEY", "-e", "MODE=visible"),
        env=env,
    )
    pid = cli.show(sid)["pid"]
    wait_until(
        cli.logs_contain(sid, f"env OPENAI_API_KEY present=True len={len(canary)}"),
        what="the agent to report its environment",
    )
    with open(f"/proc/{pid}/environ", "rb") as f:
        environ = f.read().split(b"\0")
    assert f"OPENAI_API_KEY={canary}".encode() in environ
    # The tmux server was started by this CLI: it must have been given a scrubbed environment.
    _assert_nowhere_but_the_agent(cli, sid, pid, [canary, stray])
    assert cli.show(sid)["environment"] == {"OPENAI_API_KEY": "***", "MODE": "visible"}


def test_secret_never_in_error_messages(cli: Cli) -> None:
    """A start that fails, before or after its record exists, keeps its secrets out of the
    one-line error, the record and every file under .amux/."""
    canary = f"sk-ant-CANARY-{uuid.uuid4().hex}"
    argv_canary = f"ghp_{uuid.uuid4().hex}CANARY1"
    result = cli.run(
        "start", "-e", f"API_KEY={canary}", "--cwd", "/does/not/exist", "--", "true", code=None
    )
    assert canary not in assert_one_line_error(result, 2)
    result = cli.run(
        "start", "-e", f"GITHUB_TOKEN={canary}", "--", "no-such-agent-xyz", argv_canary,
        code=None,
    )  # fmt: skip
    line = assert_one_line_error(result, 2)
    assert "no-such-agent-xyz" in line
    assert canary not in line
    assert argv_canary not in line

    program = cli.root / "agent-bin"
    program.write_text("#!/nonexistent/interpreter\n")
    program.chmod(0o755)
    result = cli.run(
        "start", "-e", f"GITHUB_TOKEN={canary}", "-e", "MODE=x",
        "--", "./agent-bin", "--token", argv_canary,
        code=None,
    )  # fmt: skip
    line = assert_one_line_error(result, 1)
    assert canary not in line
    assert argv_canary not in line
    [record] = cli.json("ls", "--all")
    assert (record["status"], record["exit_code"]) == ("failed", 127)
    assert record["environment"] == {"GITHUB_TOKEN": "***", "MODE": "x"}
    assert record["command"] == ["./agent-bin", "--token", "***"]
    assert _files_holding(cli.root / ".amux", canary.encode()) == []
    assert _files_holding(cli.root / ".amux", argv_canary.encode()) == []
