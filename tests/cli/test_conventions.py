"""Command-line conventions: global options anywhere, help and examples, non-UTF-8 argv,
.gitignore, -v logging, shell completion."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import NamedTuple

import pytest

from amux_tmux.cli import COMMANDS, main
from amux_tmux.model import Status
from tests.cli.conftest import Cli, assert_one_line_error, describe
from tests.conftest import agent_command, make_record, wait_until

Amux = Callable[..., tuple[int, str, str]]


@pytest.fixture
def amux(capsys: pytest.CaptureFixture[str]) -> Amux:
    """The CLI in this process: ``main(argv)`` with its exit code and output."""

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


# --- global options ----------------------------------------------------------------------


class Placement(NamedTuple):
    test_id: str
    argv: list[str]  # ROOT and SOCKET stand for this test's


PLACEMENTS = [
    Placement("all-before", ["--root", "ROOT", "--socket", "SOCKET", "--json", "ls", "--all"]),
    Placement("all-after", ["ls", "--all", "--root", "ROOT", "--socket", "SOCKET", "--json"]),
    Placement("mixed", ["--json", "ls", "--root", "ROOT", "--all"]),
    Placement("equals-form", ["ls", "--root=ROOT", "--json", "-a"]),
    Placement("verbose-before", ["-v", "--root", "ROOT", "ls", "--json", "-a"]),
    Placement("verbose-after", ["--root", "ROOT", "ls", "-a", "--json", "-v"]),
    Placement("log-level-after", ["ls", "-a", "--json", "--root", "ROOT", "--log-level", "info"]),
]


@pytest.mark.parametrize("case", PLACEMENTS, ids=lambda c: c.test_id)
def test_global_options_before_or_after_the_command(
    cli: Cli, amux: Amux, case: Placement, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    """--root, --socket, --json and -v/--log-level work on either side of the command."""
    make_record(cli.store, "abc123", cli.socket_path, Status.STOPPED)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no .amux/ here or above: only --root finds the record
    argv = [w.replace("ROOT", str(cli.root)).replace("SOCKET", cli.socket) for w in case.argv]
    code, out, err = amux(*argv)
    assert code == 0, err
    assert [r["id"] for r in json.loads(out)] == ["abc123"]
    if "-v" in argv:
        assert "amux-tmux: DEBUG amux_tmux" in err
    else:
        assert err == ""
    assert not (elsewhere / ".amux").exists()


def test_socket_after_the_command_and_from_the_environment(
    cli: Cli, tmp_path: pathlib.Path
) -> None:
    """--socket after the command picks the server a session starts on; AMUX_ROOT and
    AMUX_TMUX_SOCKET do the same from the environment; the option beats the variable."""
    env = {**os.environ, "AMUX_ROOT": str(cli.root), "AMUX_TMUX_SOCKET": "unused-socket"}
    base = [sys.executable, "-m", "amux_tmux"]
    started = subprocess.run(
        [*base, "start", "--socket", cli.socket, "--json", "--", *agent_command()],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=30, check=False,
    )  # fmt: skip
    assert started.returncode == 0, describe(started)
    record = json.loads(started.stdout)
    assert record["tmux_socket"] == cli.socket_path
    assert cli.tmux_sessions() == [f"amux-{record['id']}"]
    env["AMUX_TMUX_SOCKET"] = cli.socket
    listed = subprocess.run(
        [*base, "ls", "--json"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=30, check=False,
    )  # fmt: skip
    assert [r["id"] for r in json.loads(listed.stdout)] == [record["id"]]


def test_nearest_ancestor_with_amux_is_the_root(
    cli: Cli, amux: Amux, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --root, a subdirectory of the project finds the project's .amux/."""
    make_record(cli.store, "abc123", cli.socket_path, Status.STOPPED)
    deep = cli.root / "src" / "pkg"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    code, out, _ = amux("ls", "--all", "--json")
    assert code == 0
    assert [r["id"] for r in json.loads(out)] == ["abc123"]


# --- help ----------------------------------------------------------------------------------


def test_bare_command_prints_help(cli: Cli) -> None:
    """``amux-tmux`` alone (the console script and ``python -m``) prints help, exit 0."""
    script = pathlib.Path(sys.executable).parent / "amux-tmux"
    for argv in ([str(script)], [sys.executable, "-m", "amux_tmux"]):
        if not os.path.exists(argv[0]):
            continue  # the console script exists only where the package is installed
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 0, describe(result)
        assert result.stdout.startswith("usage: amux-tmux")
        assert "examples:" in result.stdout
        for name, _, _ in COMMANDS:
            assert name in result.stdout
        assert result.stderr == ""


def test_version(amux: Amux) -> None:
    with pytest.raises(SystemExit) as done:
        amux("--version")
    assert done.value.code == 0


HELP_COMMANDS = [name for name, _, _ in COMMANDS] + ["ls"]


@pytest.mark.parametrize("command", HELP_COMMANDS)
def test_every_command_help_has_examples(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``amux-tmux COMMAND -h`` exits 0 and shows an ``examples:`` section that uses it."""
    with pytest.raises(SystemExit) as done:
        main([command, "-h"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    names = ("list", "ls") if command in ("list", "ls") else (command,)
    assert any(out.startswith(f"usage: amux-tmux {name} ") for name in names), out
    examples = out[out.index("examples") :]
    assert any(f"amux-tmux {name}" in examples for name in names), examples


# --- input that is not text ------------------------------------------------------------


class Undecodable(NamedTuple):
    test_id: str
    argv: list[bytes]


UNDECODABLE = [
    Undecodable("command", [b"l\xffs"]),
    Undecodable("option-value", [b"ls", b"--agent", b"\xff\xfe"]),
    Undecodable("ref", [b"show", b"abc\xff"]),
    Undecodable("send-text", [b"send", b"abc123", b"caf\xe9"]),
    Undecodable("agent-argv", [b"start", b"--", b"echo", b"\xc3\x28"]),
    Undecodable("root", [b"--root", b"/tmp/\xff", b"ls"]),
]


@pytest.mark.parametrize("case", UNDECODABLE, ids=lambda c: c.test_id)
def test_non_utf8_argv_exits_2(cli: Cli, case: Undecodable) -> None:
    """Bytes that are not UTF-8 anywhere on the command line: exit 2, one line, no
    traceback, nothing written."""
    argv: list[str | bytes] = [sys.executable, "-m", "amux_tmux", "--root", str(cli.root)]
    result = subprocess.run(
        [*argv, "--socket", cli.socket, *case.argv],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    line = assert_one_line_error(result, 2)
    assert "is not valid UTF-8" in line
    assert not (cli.root / ".amux").exists()


# --- .amux/.gitignore ------------------------------------------------------------------


def _git_status(root: pathlib.Path) -> list[str]:
    out = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=root, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return sorted(line[3:] for line in out.stdout.splitlines())


class Layout(NamedTuple):
    test_id: str
    config_first: bool  # the user wrote .amux/config.yaml before the first start


LAYOUTS = [Layout("fresh-project", False), Layout("config-written-first", True)]


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
@pytest.mark.parametrize("case", LAYOUTS, ids=lambda c: c.test_id)
def test_git_status_shows_only_the_config(cli: Cli, case: Layout) -> None:
    """In a git repository, records, logs, locks and ids under .amux/ are ignored: git
    status shows nothing of .amux/ but config.yaml (and the .gitignore itself)."""
    subprocess.run(["git", "init", "-q", str(cli.root)], check=True, timeout=30)
    if case.config_first:
        (cli.root / ".amux").mkdir()
        (cli.root / ".amux" / "config.yaml").write_text("agents: {}\n")
    sid = cli.start(*agent_command(), opts=("--name", "tracked"))
    wait_until((cli.root / ".amux" / "logs" / f"{sid}.log").exists, what="the log")
    gitignore = cli.root / ".amux" / ".gitignore"
    assert gitignore.exists()
    assert gitignore.read_text().splitlines()[1:] == ["*", "!.gitignore", "!config.yaml"]
    if not case.config_first:
        (cli.root / ".amux" / "config.yaml").write_text("agents: {}\n")
    status = _git_status(cli.root)
    assert status == [".amux/.gitignore", ".amux/config.yaml"], status


# --- -v: logging, redacted ---------------------------------------------------------------


def test_verbose_logs_to_stderr_with_secrets_redacted(cli: Cli) -> None:
    """-v logs debug lines on stderr; no secret (an -e value, a --secret value whatever it
    looks like, a token on the agent's argv) is in them; stdout stays the id."""
    token = uuid.uuid4().hex
    api_key = f"sk-ant-api03-CANARY{token}"
    plain = f"plainlooking{token}"
    on_argv = f"ghp_{token}CANARYCANARY1234"
    result = cli.run(
        "-v", "start",
        "-e", f"ANTHROPIC_API_KEY={api_key}",
        "--secret", f"PLAIN={plain}",
        "--", *agent_command("--api-key", on_argv),
    )  # fmt: skip
    sid = result.stdout.strip()
    assert result.stdout == f"{sid}\n"
    lines = result.stderr.splitlines()
    assert lines, "no log lines"
    assert all(line.startswith("amux-tmux: ") for line in lines), lines
    assert any("DEBUG" in line for line in lines)
    assert any(f"started {sid}" in line for line in lines), lines
    for secret in (api_key, plain, on_argv, token):
        assert secret not in result.stderr
    failed = cli.run("--log-level", "debug", "show", "nosuch1", code=3)
    assert "SessionNotFound" in failed.stderr
    assert failed.stderr.splitlines()[-2] == "amux-tmux: error: no session matches 'nosuch1'"
    quiet = cli.run("--log-level", "error", "ls")
    assert quiet.stderr == ""


# --- completion ------------------------------------------------------------------------


def _complete(cli: Cli, words: list[str], cwd: pathlib.Path) -> list[str]:
    """Run the bash completion function on ``words`` (the last one is being typed)."""
    script = cli.run("completion", "bash").stdout
    line = " ".join(words)
    program = (
        f"{script}\n"
        f"COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; _amux_tmux\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    bindir = pathlib.Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=30, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return sorted(out.stdout.split())


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completion(cli: Cli) -> None:
    """The bash script parses (bash -n) and completes commands, options and refs (ids and
    names, of the project the command line names with --root too)."""
    script = cli.run("completion", "bash").stdout
    checked = subprocess.run(
        ["bash", "-n"], input=script, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr
    make_record(cli.store, "abc123", cli.socket_path, Status.RUNNING, name="review")
    make_record(cli.store, "abd456", cli.socket_path, Status.STOPPED)
    assert "stop" in _complete(cli, ["amux-tmux", "st"], cli.root)
    assert "--timeout" in _complete(cli, ["amux-tmux", "stop", "--t"], cli.root)
    assert _complete(cli, ["amux-tmux", "stop", "ab"], cli.root) == ["abc123", "abd456"]
    assert _complete(cli, ["amux-tmux", "attach", "rev"], cli.root) == ["review"]
    elsewhere = cli.root / "sub"
    elsewhere.mkdir()
    assert _complete(cli, ["amux-tmux", "stop", "ab"], elsewhere) == ["abc123", "abd456"]
    verbose = _complete(cli, ["amux-tmux", "-v", "--root=" + str(cli.root), "stop", "a"], cli.root)
    assert verbose == ["abc123", "abd456"]
    root_given = _complete(
        cli, ["amux-tmux", "--root", str(cli.root), "show", "ab"], pathlib.Path("/")
    )
    assert root_given == ["abc123", "abd456"]


def test_completion_refs_lists_ids_and_names(cli: Cli, amux: Amux) -> None:
    """completion --refs: every id (ended too) and every name, one a line."""
    make_record(cli.store, "abc123", cli.socket_path, Status.RUNNING, name="review")
    make_record(cli.store, "abd456", cli.socket_path, Status.STOPPED)
    code, out, _ = amux("--root", str(cli.root), "completion", "--refs")
    assert code == 0
    assert sorted(out.splitlines()) == ["abc123", "abd456", "review"]


class Shell(NamedTuple):
    test_id: str
    checker: list[str]  # parses a script without running it


SHELLS = [
    Shell("bash", ["bash", "-n"]),
    Shell("zsh", ["zsh", "-n"]),
    Shell("fish", ["fish", "--no-execute"]),
]


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s.test_id)
def test_completion_scripts(amux: Amux, shell: Shell) -> None:
    """completion bash|zsh|fish prints a script naming every command; the shell (when
    installed) parses it."""
    code, out, err = amux("completion", shell.test_id)
    assert (code, err) == (0, "")
    assert "amux-tmux" in out
    for name, _, _ in COMMANDS:
        assert name in out
    if shutil.which(shell.checker[0]) is None:
        pytest.skip(f"{shell.checker[0]} is not installed; the script was not parsed")
    checked = subprocess.run(shell.checker, input=out, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
