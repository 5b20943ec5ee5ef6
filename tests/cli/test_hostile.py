"""The CLI as an outsider attacks it: hostile labels, roots and files, huge inputs, odd
terminals and streams."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import unicodedata
from typing import NamedTuple

import pytest

from amux_tmux.model import Status
from tests.cli.conftest import Amux, Cli, assert_one_line_error, describe
from tests.conftest import agent_command, make_record, wait_until

#: Characters that must never reach a terminal from a table, a record or a message.
RAW_CONTROLS = ["\x1b", "\x07", "\x9b", "\u202e", "\u2066", "\r"]


HOSTILE_RECORD = """\
id: abc123
status: stopped
created_at: 2026-11-24T10:30:00Z
updated_at: 2026-11-24T10:30:00Z
name: ok-name
agent_id: "red\\e[31mAGENT\\nabc999  fake  row\\u202egpj.exe\\a"
workspace_id: "w\\tx\\r"
command: ["echo", "\\e[2J", "a\\nb"]
cwd: "/tmp/a\\nb"
environment: {"K\\e[1m": "v\\e[2Jv"}
"""


def test_hand_edited_hostile_labels_cannot_drive_the_terminal(cli: Cli, amux: Amux) -> None:
    """A record a person (or an attacker) wrote with escapes, line breaks and bidi controls
    in its labels, command, cwd and environment: the table keeps one line per record and
    shows every control character escaped; show likewise; JSON keeps the exact text."""
    sessions = cli.root / ".amux" / "sessions"
    sessions.mkdir(parents=True)
    (sessions / "session-abc123.yaml").write_text(HOSTILE_RECORD)
    code, out, err = amux("ls", "--all")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 2, out  # no fake row
    assert lines[1].startswith("abc123  ok-name  red\\x1b[31mAGENT\\nabc999")
    code, shown, _ = amux("show", "abc123")
    assert code == 0
    assert "cwd: /tmp/a\\nb\n" in shown
    assert "  K\\x1b[1m=v\\x1b[2Jv\n" in shown
    for text in (out, shown):
        for raw in RAW_CONTROLS:
            assert raw not in text
    [record] = json.loads(amux("ls", "--all", "--json")[1])
    assert record["agent_id"] == "red\x1b[31mAGENT\nabc999  fake  row\u202egpj.exe\x07"
    assert record["command"] == ["echo", "\x1b[2J", "a\nb"]


def test_hostile_file_and_argument_reach_stderr_escaped(cli: Cli, amux: Amux) -> None:
    """A record file that is not YAML because of a control character, and an argument
    holding an escape sequence: each is one stderr line with the character escaped."""
    sessions = cli.root / ".amux" / "sessions"
    sessions.mkdir(parents=True)
    (sessions / "session-zzz999.yaml").write_bytes(b"id: zzz999\nstatus: \x1b[2Jbad\x07\n")
    code, out, err = amux("ls", "--all")
    assert code == 0
    assert len(err.splitlines()) == 1
    assert err.startswith("amux-tmux: warning: bad record")
    code, out, err = amux("ls", "\x1b[2Jx\u202e")
    assert (code, out) == (2, "")
    assert err.startswith("amux-tmux: error: unrecognized arguments: \\x1b[2Jx\\u202e")
    for raw in RAW_CONTROLS:
        assert raw not in err


def _display_column(line: str, text: str) -> int:
    """The terminal column at which ``text`` starts in ``line``."""
    before = line[: line.index(text)]
    return sum(
        0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        for ch in before
    )


def test_wide_labels_keep_the_table_aligned(cli: Cli, amux: Amux) -> None:
    """Agent labels in wide (CJK) characters take two terminal columns each: the next
    column still starts at the same place on every row."""
    make_record(
        cli.store, "abc111", cli.socket_path, Status.STOPPED, agent_id="日本語エージェント"
    )
    make_record(cli.store, "abc222", cli.socket_path, Status.STOPPED, agent_id="ab")
    make_record(cli.store, "abc333", cli.socket_path, Status.STOPPED, agent_id="e\u0301te")
    lines = amux("ls", "--all")[1].splitlines()
    columns = {_display_column(line, "stopped") for line in lines[1:]}
    assert columns == {_display_column(lines[0], "STATUS")}, "\n".join(lines)


def test_a_terminal_that_cannot_show_unicode(cli: Cli) -> None:
    """With an ASCII-only output encoding (an old locale), a Unicode label is printed
    escaped, not an 'internal error: UnicodeEncodeError'."""
    make_record(cli.store, "abc111", cli.socket_path, Status.STOPPED, agent_id="日本")
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "LC_ALL": "C"}
    result = cli.run("ls", "--all", env=env)
    assert "abc111  -     \\u65e5\\u672c" in result.stdout, describe(result)
    assert result.stderr == ""
    assert json.loads(cli.run("ls", "--all", "--json", env=env).stdout)[0]["agent_id"] == "日本"


class Stream(NamedTuple):
    test_id: str
    argv: list[str]
    redirect: dict[str, object]
    code: int
    stderr: str


STREAMS = [
    Stream("stdout-closed", ["ls", "--all"], {"stdout": subprocess.DEVNULL}, 0, ""),
    Stream("stdout-full", ["ls", "--all"], {"stdout": "/dev/full"}, 1, "No space left"),
    Stream("stdin-closed", ["send", "abc111", "-"], {"stdin": "closed"}, 2, "stdin"),
]


@pytest.mark.parametrize("case", STREAMS, ids=lambda c: c.test_id)
def test_odd_standard_streams(cli: Cli, case: Stream) -> None:
    """Output to a full disk, no stdin at all: one error line or none, never a
    traceback."""
    make_record(cli.store, "abc111", cli.socket_path, Status.STOPPED)
    kwargs: dict[str, object] = {"stdin": subprocess.DEVNULL, "stderr": subprocess.PIPE}
    opened = []
    if case.redirect.get("stdout") == "/dev/full":
        opened.append(open("/dev/full", "w"))  # noqa: SIM115
        kwargs["stdout"] = opened[-1]
    elif "stdout" in case.redirect:
        kwargs["stdout"] = case.redirect["stdout"]
    if case.redirect.get("stdin") == "closed":
        kwargs["stdin"] = None
        kwargs["preexec_fn"] = lambda: os.close(0)
    try:
        proc = subprocess.run(cli.argv(*case.argv), text=True, timeout=30, check=False, **kwargs)  # type: ignore[call-overload]
    finally:
        for f in opened:
            f.close()
    assert proc.returncode == case.code, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) == (1 if case.stderr else 0), proc.stderr
    assert case.stderr in proc.stderr


def test_ls_into_a_pipe_closed_early(cli: Cli) -> None:
    """``amux-tmux ls --json | head -1`` over more than a pipe holds: the reader leaves,
    ls exits 0 quietly."""
    for i in range(100):
        make_record(cli.store, f"p{i:05d}", cli.socket_path, Status.STOPPED, command=("x" * 900,))
    proc = subprocess.Popen(
        cli.argv("ls", "--all", "--json"), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == b"[\n"
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=30) == 0
    assert err == b""


def test_a_hostile_project_root_is_never_code(tmp_path: pathlib.Path, socket_name: str) -> None:
    """A root with ; $() #() #{} and a newline in its path: the agent runs, its log is
    kept, its exit is recorded, and nothing in the path was run by tmux or a shell."""
    root = tmp_path / "r;oot $(touch X) #(touch Y) #{pane_id}\nnl"
    root.mkdir()
    cli = Cli(root, socket_name)
    sid = cli.start("sh", "-c", "echo hostile-root-ok; sleep 0.5; exit 4")
    wait_until(cli.logs_contain(sid, "hostile-root-ok"), what="the agent's output")
    record = cli.wait_status(sid, "failed")
    assert record["exit_code"] == 4
    assert (root / ".amux" / "logs" / f"{sid}.log").read_text().startswith("hostile-root-ok")
    for where in (root, tmp_path, pathlib.Path.cwd()):
        assert not (where / "X").exists()
        assert not (where / "Y").exists()


class Huge(NamedTuple):
    test_id: str
    argv: list[str]
    stdin: str | None
    message: str


HUGE = [
    Huge("stdin-over-1MiB", ["-"], "a" * (1024 * 1024 + 1), "over 1048576 bytes"),
    Huge("endless-file", ["--file", "/dev/zero"], None, "over 1048576 bytes"),
    Huge("not-utf8-file", ["--file", "BINARY"], None, "not valid UTF-8"),
    Huge("a-directory", ["--file", "DIR"], None, "cannot read"),
]


@pytest.mark.parametrize("case", HUGE, ids=lambda c: c.test_id)
def test_send_refuses_what_it_cannot_send(cli: Cli, case: Huge) -> None:
    """Too much text, an endless file, bytes that are not text, a directory: exit 2, one
    line, nothing typed (the session is not even looked up)."""
    (cli.root / "binary").write_bytes(b"\xff\xfe\x00")
    argv = [
        str(cli.root / "binary") if a == "BINARY" else str(cli.root) if a == "DIR" else a
        for a in case.argv
    ]
    result = cli.run("send", "nosuch1", *argv, stdin=case.stdin, code=None)
    assert case.message in assert_one_line_error(result, 2)


def test_send_of_a_large_prompt_arrives_whole(cli: Cli) -> None:
    """A 200 kB prompt from a file is one bracketed paste of exactly that text."""
    sid = cli.start(*agent_command("--bracketed"))
    wait_until(
        lambda: "\x1b[?2004h" in cli.run("logs", sid, "--raw").stdout,
        what="the agent to ask for bracketed paste",
    )
    text = "x" * 199_999 + "\nEND"
    (cli.root / "big.txt").write_text(text)
    cli.run("send", sid, "--file", str(cli.root / "big.txt"))

    def pasted() -> str | None:
        for line in cli.run("logs", sid).stdout.splitlines():
            if line.startswith("paste "):
                got: str = json.loads(line[6:])
                return got
        return None

    assert wait_until(pasted, timeout=20, what="the paste") == text


def test_a_symlinked_store_is_refused(cli: Cli, tmp_path: pathlib.Path) -> None:
    """.amux/ as a symlink (records would land elsewhere): start and ls refuse, exit 2,
    and nothing is written through it."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (cli.root / ".amux").symlink_to(elsewhere)
    for argv in (["start", "--", "true"], ["ls"]):
        line = assert_one_line_error(cli.run(*argv, code=None), 2)
        assert "symbolic link" in line
    assert list(elsewhere.iterdir()) == []


def test_a_socket_path_tmux_cannot_use(cli: Cli, tmp_path: pathlib.Path) -> None:
    """A socket path longer than a Unix socket allows: exit 5, one line, no record."""
    socket = str(tmp_path / ("s" * 120))
    result = subprocess.run(
        [sys.executable, "-m", "amux_tmux", "--root", str(cli.root), "--socket", socket,
         "start", "--", "true"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert "longer than 107 bytes" in assert_one_line_error(result, 5)
    assert cli.json("ls", "--all") == []


def test_a_hanging_tmux_is_bounded(cli: Cli, tmp_path: pathlib.Path) -> None:
    """tmux that never answers (out of file descriptors, trap 10): stop gives up after the
    tmux timeout with exit 5 (ls --live and the rest share the same bounded call)."""
    sid = cli.start(*agent_command())
    fake = tmp_path / "hang-bin"
    fake.mkdir()
    (fake / "tmux").write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do [ "$a" = "-V" ] && { echo "tmux 3.3a"; exit 0; }; done\n'
        "exec sleep 60\n"
    )
    (fake / "tmux").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}
    line = assert_one_line_error(cli.run("stop", sid, code=None, env=env, timeout=20), 5)
    assert "did not answer" in line
    assert cli.show(sid)["state"] == "alive"  # the real tmux: nothing was stopped


def test_attach_with_a_stale_tmux_variable(cli: Cli) -> None:
    """$TMUX naming a server that is gone (a variable leaked into a shell): one error line
    naming it, no exec, the session untouched."""
    sid = cli.start(*agent_command())
    env = {**os.environ, "TMUX": f"{cli.root}/gone-server,4242,0"}
    for how in ("popup", "window"):
        line = assert_one_line_error(cli.run("attach", sid, "--in", how, code=None, env=env), 5)
        assert "gone-server" in line
    assert cli.show(sid)["state"] == "alive"
