"""CLI failures: one line on stderr, the documented exit code, never a traceback."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Iterator
from typing import NamedTuple

import psutil
import pytest

from amux_tmux.model import Session, Status, utcnow
from amux_tmux.store import FileStore
from tests.cli.conftest import Amux, Cli, assert_one_line_error, describe
from tests.conftest import agent_command

REF_COMMANDS = [
    ["show"],
    ["stop"],
    ["rm"],
    ["rm", "--force"],
    ["logs"],
    ["logs", "-f"],
    ["send", "REF", "hello"],
    ["attach"],
    ["rename", "REF", "newname"],
    ["restart"],
    ["wait", "REF", "--until", "exited"],
    ["mark", "idle", "REF"],
]


def _with_ref(command: list[str], ref: str) -> list[str]:
    """Put ``ref`` in the command (where REF stands, else right after the verb)."""
    if "REF" in command:
        return [ref if word == "REF" else word for word in command]
    return [command[0], ref, *command[1:]]


def _record(store: FileStore, sid: str, status: Status = Status.STOPPED, **fields: object) -> None:
    now = utcnow()
    store.create(Session(id=sid, status=status, created_at=now, updated_at=now, **fields))  # type: ignore[arg-type]


def _one_line(ran: tuple[int, str, str], code: int) -> str:
    """The contract for failures, in process: exit ``code``, nothing on stdout, exactly
    one stderr line in the CLI's format; return it."""
    got, out, err = ran
    assert (got, out) == (code, ""), ran
    assert err.endswith("\n") and len(err.splitlines()) == 1, err
    assert err.startswith("amux-tmux: error: "), err
    assert "Traceback" not in err
    return err.rstrip("\n")


def _no_records(root: pathlib.Path) -> bool:
    sessions = root / ".amux" / "sessions"
    return not sessions.exists() or list(sessions.iterdir()) == []


@pytest.mark.parametrize("command", REF_COMMANDS, ids=" ".join)
def test_unknown_ref_exits_3(cli: Cli, amux: Amux, command: list[str]) -> None:
    """A reference that matches nothing: exit 3 from every command that takes one."""
    _record(FileStore(cli.root), "other1")
    line = _one_line(amux(*_with_ref(command, "nothing")), 3)
    assert line == "amux-tmux: error: no session matches 'nothing'"


BAD_REFS = ["../../etc/passwd", "a/b", "=x", "x" * 300, "a b", "\u00e9t\u00e9", "a\x1b[2Jb"]


@pytest.mark.parametrize("ref", BAD_REFS, ids=ascii)
def test_bad_ref_exits_2(cli: Cli, amux: Amux, ref: str) -> None:
    """A reference that can be neither id, prefix nor name is refused before any lookup;
    the message shows it escaped (a terminal escape in it does not reach the terminal)."""
    for command in (["show"], ["stop"], ["rm", "--force"], ["send", "REF", "x"]):
        line = _one_line(amux(*_with_ref(command, ref)), 2)
        assert "invalid session id" in line
        assert "\x1b" not in line
    assert not (cli.root / "etc").exists()


def test_ambiguous_prefix_exits_2_and_names_the_candidates(cli: Cli, amux: Amux) -> None:
    """A prefix of several ids, or a name shared by ended sessions: exit 2 with candidates."""
    store = FileStore(cli.root)
    _record(store, "f00aaa", name="dup")
    _record(store, "f00bbb", name="dup")
    _record(store, "f01ccc")
    for command in (["show"], ["stop"], ["rm"], ["logs"], ["attach"]):
        line = _one_line(amux(*_with_ref(command, "f00")), 2)
        assert "'f00' is ambiguous" in line
        assert line.endswith("f00aaa, f00bbb")
    line = _one_line(amux("show", "dup"), 2)
    assert line.endswith("f00aaa, f00bbb")
    assert cli.show("f00a")["id"] == "f00aaa"  # a longer prefix is unique


@pytest.fixture
def live_pid() -> Iterator[tuple[int, float]]:
    """A process that stands for a recorded agent still running: (pid, create time)."""
    proc = subprocess.Popen(["sleep", "600"])
    try:
        yield proc.pid, psutil.Process(proc.pid).create_time()
    finally:
        proc.kill()
        proc.wait()


def test_tmux_missing_exits_5(
    cli: Cli, tmp_path: pathlib.Path, live_pid: tuple[int, float]
) -> None:
    """No tmux on PATH: start writes nothing; commands that must reach a session whose
    agent may run exit 5 with one line; reading the store (ls, show, logs) still works."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    env = {**os.environ, "PATH": str(empty)}
    line = assert_one_line_error(cli.run("start", "--", *agent_command(), code=None, env=env), 5)
    assert "tmux not found" in line
    assert _no_records(cli.root)

    pid, created = live_pid
    _record(
        FileStore(cli.root),
        "abc123",
        Status.RUNNING,
        tmux_socket=cli.socket_path,
        tmux_session="amux-abc123",
        tmux_session_id="$99",
        pane_id="%99",
        pid=pid,
        pid_create_time=created,
    )
    for command in (
        ["stop", "abc123"],
        ["rm", "abc123"],
        ["rm", "--force", "abc123"],
        ["logs", "abc123"],
        ["send", "abc123", "x"],
        ["attach", "abc123"],
        ["wait", "abc123", "--until", "idle", "--timeout", "1"],
        ["reconcile"],
    ):
        result = cli.run(*command, code=None, env=env)
        assert result.returncode == 5, describe(result)
        assert len(result.stderr.splitlines()) == 1, describe(result)
        assert "tmux not found" in result.stderr

    # Reading the store needs no tmux: ls --live and show warn, STATE is unknown.
    assert [r["id"] for r in json.loads(cli.run("ls", "--json", env=env).stdout)] == ["abc123"]
    live = cli.run("ls", "--live", env=env)
    assert live.stdout.splitlines()[1].split()[:5] == ["abc123", "-", "-", "running", "unknown"]
    assert live.stderr.startswith("amux-tmux: warning: session abc123: tmux not found")
    shown = cli.run("show", "abc123", "--json", env=env)
    assert json.loads(shown.stdout)["state"] == "unknown"
    assert shown.stderr.startswith("amux-tmux: warning: tmux not found")
    assert len(shown.stderr.splitlines()) == 1
    assert json.loads(cli.run("ls", "--json", env=env).stdout)[0]["status"] == "running"


def test_tmux_too_old_exits_5(cli: Cli, tmp_path: pathlib.Path) -> None:
    """A tmux older than 3.2: start exits 5 saying so (once: not "tmux tmux 2.9")."""
    fake = tmp_path / "old-bin"
    fake.mkdir()
    (fake / "tmux").write_text("#!/bin/sh\necho 'tmux 2.9'\n")
    (fake / "tmux").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ.get('PATH', '')}"}
    line = assert_one_line_error(cli.run("start", "--", "true", code=None, env=env), 5)
    assert "tmux 2.9 is too old" in line
    assert "tmux tmux" not in line
    assert _no_records(cli.root)


class BadArgv(NamedTuple):
    test_id: str
    argv: list[str]
    message: str = ""


BAD_ARGV = [
    BadArgv("unknown-command", ["bogus-command"], "invalid choice: 'bogus-command'"),
    BadArgv("unknown-option", ["ls", "--bogus"], "unrecognized arguments: --bogus"),
    BadArgv("unknown-global-option", ["--bogus", "ls"], "unrecognized arguments: --bogus"),
    BadArgv("stray-word", ["ls", "extra"], "unrecognized arguments: extra"),
    BadArgv("words-after-dashes", ["stop", "x1", "--", "x2"], "stop takes nothing after --"),
    BadArgv("dashes-without-command", ["--", "ls"], "unrecognized arguments: -- ls"),
    BadArgv("unknown-status", ["ls", "--status", "sleeping"], "invalid choice: 'sleeping'"),
    BadArgv("negative-limit", ["ls", "--limit", "-1"], "--limit"),
    BadArgv("word-limit", ["ls", "--limit", "many"], "invalid int value: 'many'"),
    BadArgv("negative-offset", ["ls", "--offset", "-3"], "--offset"),
    BadArgv("start-nothing", ["start"], "name an agent profile"),
    BadArgv("start-empty-command", ["start", "--"], "name an agent profile"),
    BadArgv("env-no-name", ["start", "-e", "=x", "--", "true"], "invalid environment"),
    BadArgv("env-digit-name", ["start", "-e", "1BAD=x", "--", "true"], "'1BAD'"),
    BadArgv("env-dash-name", ["start", "-e", "BAD-NAME=x", "--", "true"], "'BAD-NAME'"),
    BadArgv("env-unset", ["start", "-e", "AMUX_SURELY_UNSET", "--", "true"], "not set"),
    BadArgv("env-missing-value", ["start", "-e"], "expected one argument"),
    BadArgv("bad-name", ["start", "--name", "bad name!", "--", "true"], "invalid session name"),
    BadArgv("missing-cwd", ["start", "--cwd", "/does/not/exist", "--", "true"], "not exist"),
    BadArgv("bad-attach-in", ["start", "--in", "tab", "--", "true"], "invalid choice: 'tab'"),
    BadArgv("stop-no-ref", ["stop"], "the following arguments are required: REF"),
    BadArgv("show-no-ref", ["show"], "the following arguments are required: ref"),
    BadArgv("rename-no-name", ["rename", "x1"], "required: name"),
    BadArgv("negative-timeout", ["stop", "x1", "--timeout", "-1"], "--timeout"),
    BadArgv("nan-timeout", ["stop", "x1", "--timeout", "nan"], "--timeout"),
    BadArgv("word-timeout", ["stop", "x1", "--timeout", "soon"], "invalid float value"),
    BadArgv("negative-lines", ["logs", "x1", "-n", "-1"], "--lines"),
    BadArgv("send-nothing", ["send"], "required: ref"),
    BadArgv("send-text-and-file", ["send", "x1", "hi", "--file", "f"], "not both"),
    BadArgv("send-bad-settle", ["send", "x1", "hi", "--settle", "-1"], "--settle"),
    BadArgv("send-unreadable-file", ["send", "x1", "--file", "/no/such/file"], "cannot read"),
    BadArgv("wait-no-until", ["wait", "x1"], "required: --until"),
    BadArgv("wait-bad-until", ["wait", "x1", "--until", "done"], "invalid choice: 'done'"),
    BadArgv("wait-inf-timeout", ["wait", "x1", "--until", "idle", "--timeout", "-inf"], ""),
    BadArgv("mark-bad-state", ["mark", "sleeping", "x1"], "invalid choice: 'sleeping'"),
    BadArgv("mark-no-session", ["mark", "idle"], "no session"),
    BadArgv("negative-grace", ["reconcile", "--grace", "-5"], "--grace"),
    BadArgv("completion-bad-shell", ["completion", "tcsh"], "invalid choice: 'tcsh'"),
    BadArgv("completion-no-shell", ["completion"], "name a shell"),
    BadArgv("bad-log-level", ["--log-level", "loud", "ls"], "invalid choice: 'loud'"),
]


@pytest.mark.parametrize("case", BAD_ARGV, ids=lambda c: c.test_id)
def test_bad_argv_exits_2(cli: Cli, amux: Amux, case: BadArgv) -> None:
    """Malformed command lines: exit 2, exactly one stderr line, no traceback, no record."""
    line = _one_line(amux(*case.argv), 2)
    assert case.message in line
    assert _no_records(cli.root)


def test_start_in_a_missing_root_exits_2(cli: Cli, tmp_path: pathlib.Path) -> None:
    """A mistyped --root is not created (records would scatter)."""
    result = subprocess.run(
        [sys.executable, "-m", "amux_tmux", "--root", str(tmp_path / "no" / "such"),
         "--socket", cli.socket, "start", "--", "true"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    line = assert_one_line_error(result, 2)
    assert "does not exist" in line
    assert not (tmp_path / "no").exists()


def test_a_current_directory_that_was_removed(cli: Cli, tmp_path: pathlib.Path) -> None:
    """With --root the command works; without, one line says what to do (exit 2)."""
    gone = tmp_path / "gone"
    gone.mkdir()
    base = [sys.executable, "-m", "amux_tmux", "--socket", cli.socket]
    script = (
        "import os, subprocess, sys; os.chdir(sys.argv[1]); os.rmdir(sys.argv[1]); "
        "sys.exit(subprocess.run(sys.argv[2:]).returncode)"
    )

    def run_in_gone(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", script, str(gone), *base, *args],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip

    assert run_in_gone("--root", str(cli.root), "ls").returncode == 0
    gone.mkdir()
    line = assert_one_line_error(run_in_gone("ls"), 2)
    assert "current directory no longer exists" in line


def test_list_does_not_import_libtmux(cli: Cli) -> None:
    """ls without --live must not pay for libtmux; checked in the real interpreter."""
    sid = cli.start(*agent_command())
    probe = (
        "import sys\n"
        "from amux_tmux.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "print('LOADED', sorted(m for m in sys.modules if m.split('.')[0] == 'libtmux'))\n"
        "sys.exit(code)\n"
    )
    for extra in ([], ["--all", "--json"]):
        result = subprocess.run(
            [sys.executable, "-c", probe, "--root", str(cli.root), "--socket", cli.socket,
             "ls", *extra],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert result.returncode == 0, describe(result)
        assert sid in result.stdout
        assert result.stdout.rstrip().endswith("LOADED []"), describe(result)
    timed = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "amux_tmux", "--root", str(cli.root),
         "--socket", cli.socket, "ls"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert timed.returncode == 0
    assert "import time:" in timed.stderr  # the probe itself works
    assert "libtmux" not in timed.stderr


def test_corrupt_record_is_a_warning_not_a_crash(cli: Cli) -> None:
    """A garbage record: ls warns on one line and still lists the good ones."""
    store = FileStore(cli.root)
    _record(store, "good01")
    (store.sessions_dir / "session-bad001.yaml").write_bytes(b"{{{ not yaml: [")
    result = cli.run("ls", "--all")
    assert "good01" in result.stdout
    assert "Traceback" not in result.stderr
    warnings = result.stderr.splitlines()
    assert len(warnings) == 1
    assert warnings[0].startswith("amux-tmux: warning: ")
    assert "bad001" in warnings[0]
