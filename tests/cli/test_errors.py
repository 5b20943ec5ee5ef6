"""CLI failures: one line on stderr, the documented exit code, never a traceback."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from amux_tmux.model import Session, Status, utcnow
from amux_tmux.store import FileStore
from tests.cli.conftest import Cli, assert_one_line_error, describe
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
]


def _with_ref(command: list[str], ref: str) -> list[str]:
    """Put ``ref`` in the command (where REF stands, else right after the verb)."""
    if "REF" in command:
        return [ref if word == "REF" else word for word in command]
    return [command[0], ref, *command[1:]]


def _record(store: FileStore, sid: str, status: Status = Status.STOPPED, **fields: object) -> None:
    now = utcnow()
    store.create(Session(id=sid, status=status, created_at=now, updated_at=now, **fields))  # type: ignore[arg-type]


def test_unknown_ref_exits_3(cli: Cli) -> None:
    """A reference that matches nothing: exit 3 from every command that takes one."""
    _record(FileStore(cli.root), "other1")
    for command in REF_COMMANDS:
        line = assert_one_line_error(cli.run(*_with_ref(command, "nothing"), code=None), 3)
        assert line == "amux-tmux: error: no session matches 'nothing'"


@pytest.mark.parametrize("ref", ["../../etc/passwd", "a/b", "=x", "x" * 300, "a b"])
def test_bad_id_exits_2(cli: Cli, ref: str) -> None:
    """A reference that can be neither id, prefix nor name is refused before any lookup."""
    for command in (["show"], ["stop"], ["rm", "--force"], ["send", "REF", "x"]):
        line = assert_one_line_error(cli.run(*_with_ref(command, ref), code=None), 2)
        assert "invalid session id" in line
    assert not (cli.root / "etc").exists()


def test_ambiguous_prefix_exits_2_and_names_the_candidates(cli: Cli) -> None:
    """A prefix of several ids, or a name shared by ended sessions: exit 2 with candidates."""
    store = FileStore(cli.root)
    _record(store, "f00aaa", name="dup")
    _record(store, "f00bbb", name="dup")
    _record(store, "f01ccc")
    for command in (["show"], ["stop"], ["rm"], ["logs"], ["attach"]):
        line = assert_one_line_error(cli.run(*_with_ref(command, "f00"), code=None), 2)
        assert "'f00' is ambiguous" in line
        assert line.endswith("f00aaa, f00bbb")
    line = assert_one_line_error(cli.run("show", "dup", code=None), 2)
    assert line.endswith("f00aaa, f00bbb")
    assert cli.show("f00a")["id"] == "f00aaa"  # a longer prefix is unique


def _no_tmux_env(tmp_path: pathlib.Path) -> dict[str, str]:
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    return {**os.environ, "PATH": str(empty)}


def test_tmux_missing_exits_5(cli: Cli, tmp_path: pathlib.Path) -> None:
    """No tmux on PATH: commands that need tmux exit 5 with one line; ls still works."""
    env = _no_tmux_env(tmp_path)
    line = assert_one_line_error(cli.run("start", "--", "true", code=None, env=env), 5)
    assert "tmux not found" in line
    assert FileStore(cli.root).list().sessions == []  # nothing was written

    _record(
        FileStore(cli.root),
        "abc123",
        Status.RUNNING,
        tmux_socket=cli.socket_path,
        tmux_session="amux-abc123",
    )
    for command in (
        ["ls", "--live"],
        ["stop", "abc123"],
        ["rm", "abc123"],
        ["logs", "abc123"],
        ["send", "abc123", "x"],
        ["attach", "abc123"],
    ):
        line = assert_one_line_error(cli.run(*command, code=None, env=env), 5)
        assert "tmux not found" in line

    # Reading the store needs no tmux.
    assert [r["id"] for r in json.loads(cli.run("ls", "--json", env=env).stdout)] == ["abc123"]
    shown = cli.run("show", "abc123", "--json", env=env)
    assert json.loads(shown.stdout)["id"] == "abc123"
    assert shown.stderr.startswith("amux-tmux: warning: tmux not found")
    assert len(shown.stderr.splitlines()) == 1
    # rm --force removes a record even when tmux cannot be asked.
    cli.run("rm", "--force", "abc123", env=env)
    assert FileStore(cli.root).list().sessions == []


def test_tmux_too_old_exits_5(cli: Cli, tmp_path: pathlib.Path) -> None:
    """A tmux older than 3.2: start exits 5 saying so."""
    fake = tmp_path / "old-bin"
    fake.mkdir()
    (fake / "tmux").write_text("#!/bin/sh\necho 'tmux 2.9'\n")
    (fake / "tmux").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ.get('PATH', '')}"}
    line = assert_one_line_error(cli.run("start", "--", "true", code=None, env=env), 5)
    assert "tmux 2.9 is too old" in line
    assert FileStore(cli.root).list().sessions == []


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["bogus-command"],
        ["ls", "--bogus"],
        ["--bogus", "ls"],
        ["ls", "--status", "sleeping"],
        ["ls", "--limit", "-1"],
        ["ls", "--limit", "many"],
        ["start"],
        ["start", "--"],
        ["start", "-e", "=x", "--", "true"],
        ["start", "-e", "1BAD=x", "--", "true"],
        ["start", "-e", "BAD-NAME=x", "--", "true"],
        ["start", "-e", "AMUX_TEST_SURELY_UNSET_VAR", "--", "true"],
        ["start", "-e"],
        ["start", "--name", "bad name!", "--", "true"],
        ["start", "--cwd", "/does/not/exist", "--", "true"],
        ["stop"],
        ["stop", "x1", "--timeout", "-1"],
        ["logs", "x1", "-n", "-1"],
        ["send", "x1"],
        ["reconcile", "--grace", "-5"],
    ],
    ids=lambda argv: " ".join(argv) or "(nothing)",
)
def test_bad_argv_exits_2(cli: Cli, argv: list[str]) -> None:
    """Malformed command lines: exit 2, one line, and no record written."""
    assert_one_line_error(cli.run(*argv, code=None), 2)
    sessions = cli.root / ".amux" / "sessions"
    assert not sessions.exists() or list(sessions.iterdir()) == []


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


def test_version_and_help_exit_0(cli: Cli) -> None:
    assert cli.run("--version").stdout.startswith("amux-tmux ")
    assert "usage: amux-tmux" in cli.run("--help").stdout
    assert "usage: amux-tmux start" in cli.run("start", "--help").stdout


def test_list_does_not_import_libtmux(cli: Cli) -> None:
    """ls (and ls --live) must not pay for libtmux; checked in the real interpreter."""
    sid = cli.start(*agent_command())
    probe = (
        "import sys\n"
        "from amux_tmux.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "print('LOADED', sorted(m for m in sys.modules if m.split('.')[0] == 'libtmux'))\n"
        "sys.exit(code)\n"
    )
    for extra in ([], ["--live"], ["--all", "--json"]):
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
