"""Regressions found by attacking the CLI from outside: each test fails on the bug it names.

Real tmux on private sockets; every project lives under the test's ``tmp_path``.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from typing import NamedTuple

import psutil
import pytest

from amux_tmux.model import Status
from tests.helpers import (
    Cli,
    agent_command,
    describe,
    gone_within,
    kill_server,
    make_record,
    owned_session,
    wait_until,
)

TIMEOUT = 15.0
TmuxCli = Callable[..., subprocess.CompletedProcess[str]]


def _session_ids(tmux_cli: TmuxCli) -> dict[str, str]:
    """Every session on the server: name -> $id."""
    out = tmux_cli("list-sessions", "-F", "#{session_name} #{session_id}")
    if out.returncode != 0:
        return {}
    return dict(line.split(" ", 1) for line in out.stdout.splitlines())


def _pane_pid(tmux_cli: TmuxCli, session: str) -> int:
    out = tmux_cli("list-panes", "-t", f"={session}:", "-F", "#{pane_pid}")
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[0])


# --- a copy of a project must not kill the original's agent ----------------------------


def test_restart_in_a_copied_project_leaves_the_original_s_agent_alone(
    tmp_path: pathlib.Path, socket_name: str, tmux_cli: TmuxCli
) -> None:
    """``cp -a project copy; cd copy; amux-tmux restart X``: the copy's new-session
    fails with "duplicate session" (the original's ``amux-X`` runs), and the clean-up
    then kills ``=amux-X`` by name, which is the ORIGINAL project's live agent."""
    original = Cli(tmp_path / "original", socket_name)
    original.root.mkdir()
    sid = original.start(*agent_command())
    name = f"amux-{sid}"
    before = _session_ids(tmux_cli)[name]
    agent_pid = _pane_pid(tmux_cli, name)
    shutil.copytree(original.root, tmp_path / "copy", symlinks=True)
    copy = Cli(tmp_path / "copy", socket_name)

    out = copy.run("restart", sid, code=None)

    assert "Traceback" not in out.stderr, describe(out)
    assert _session_ids(tmux_cli).get(name) == before, f"original's session killed: {out}"
    assert psutil.pid_exists(agent_pid) and not gone_within(agent_pid, 0.2)
    assert original.show(sid)["status"] == "running"


# --- a socket path that is an ordinary file ---------------------------------------------


class FileSocket(NamedTuple):
    test_id: str
    #: how the file comes to be used as the server's socket
    via: str


FILE_SOCKETS = [
    FileSocket("start-socket-option", "start"),
    FileSocket("restart-of-a-record-naming-it", "restart"),
]


@pytest.mark.parametrize("case", FILE_SOCKETS, ids=lambda c: c.test_id)
def test_a_socket_path_that_is_a_regular_file_is_never_replaced(
    cli: Cli, tmp_path: pathlib.Path, case: FileSocket
) -> None:
    """tmux unlinks whatever is at ``-S PATH`` when it cannot connect, then binds its
    socket there: ``--socket ~/notes.txt`` (a typo), or a record whose ``tmux_socket``
    names a file, destroys that file. amux must refuse instead (it destroyed
    /etc/passwd when run as root with ``--socket /etc/passwd``)."""
    precious = tmp_path / "precious.txt"
    precious.write_text("precious data\n")
    try:
        if case.via == "start":
            user = Cli(cli.root, str(precious))
            out = user.run("start", "--", *agent_command(), code=None)
        else:
            sid = cli.start(*agent_command())
            cli.run("stop", sid)
            record = cli.store.path_for(sid)
            text = record.read_text()
            record.write_text(
                "\n".join(
                    f"tmux_socket: {precious}" if ln.startswith("tmux_socket:") else ln
                    for ln in text.splitlines()
                )
                + "\n"
            )
            out = cli.run("restart", sid, code=None)
        mode = precious.lstat().st_mode
        assert stat.S_ISREG(mode), f"the file became {stat.filemode(mode)}: {describe(out)}"
        assert precious.read_text() == "precious data\n"
        assert out.returncode != 0, describe(out)
        assert len(out.stderr.splitlines()) == 1, describe(out)
    finally:
        if precious.exists() and stat.S_ISSOCK(precious.lstat().st_mode):
            kill_server(str(precious))


# --- an interrupted start --------------------------------------------------------------


def test_reconcile_remove_cleans_the_fifos_of_a_killed_start(cli: Cli) -> None:
    """kill -9 of ``start`` while its launch FIFOs exist: one ``reconcile --remove
    --grace 0`` (and ``prune``) must leave nothing behind, but the two FIFOs stay in
    ``.amux/run`` for good (nothing sweeps that directory)."""
    cli.start(*agent_command())  # the store exists, with its run directory
    run_dir = cli.root / ".amux" / "run"
    argv = cli.argv("start", "--", *agent_command())
    for _attempt in range(20):
        proc = subprocess.Popen(
            argv,
            cwd=cli.root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + TIMEOUT
        caught = False
        while proc.poll() is None and time.monotonic() < deadline:
            if any(p.name.endswith(".spec.fifo") for p in run_dir.iterdir()):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                caught = True
                break
        proc.wait(timeout=10)
        if caught:
            break
    else:
        pytest.skip("start always finished before it could be killed")
    assert [p.name for p in run_dir.iterdir()], "the kill left the FIFOs (precondition)"
    cleanup = cli.run("reconcile", "--remove", "--grace", "0")
    cli.run("prune")
    assert sorted(p.name for p in run_dir.iterdir()) == [], describe(cleanup)


def test_something_odd_in_the_run_directory_does_not_stop_reconcile(cli: Cli) -> None:
    """A directory (or a file) named like a launch FIFO: reconcile still does its work;
    what is not a file it may remove is left."""
    live = cli.start(*agent_command())
    run_dir = cli.root / ".amux" / "run"
    (run_dir / "abcdef1234-deadbeef.spec.fifo").mkdir()
    (run_dir / "abcdef1234-deadbeef.status.fifo").write_text("x")
    out = cli.run("reconcile", "--remove", "--grace", "0")
    assert out.stderr == "", describe(out)
    assert [p.name for p in run_dir.iterdir()] == ["abcdef1234-deadbeef.spec.fifo"]
    assert [r["id"] for r in cli.json("ls")] == [live]


# --- bad input is a usage error, not an internal one -------------------------------------


def test_a_copied_variable_that_is_not_utf8_is_not_an_internal_error(cli: Cli) -> None:
    """``X=$'v\\xff' amux-tmux start -e X -- CMD`` fails with "internal error:
    UnicodeEncodeError" (exit 1); the same value inherited, or given as ``--secret X``,
    works. It should reach the agent as it does then, or be refused as bad input (2)."""
    env = {**os.environ, "NOTUTF8": "v\udcff"}  # os.fsencode -> b"v\xff"
    out = cli.run("start", "-e", "NOTUTF8", "--", *agent_command(), code=None, env=env)
    assert "internal error" not in out.stderr, describe(out)
    assert out.returncode in (0, 2), describe(out)


# --- stop from every state -----------------------------------------------------------------


def test_stop_a_created_record_whose_session_runs(cli: Cli, tmux_cli: TmuxCli) -> None:
    """``created`` is a documented status; ``stop`` works "from every state", but on a
    ``created`` record with a live owned session it exits 2: "cannot become stopping"
    (created -> stopping is not a transition; created -> stopped is)."""
    cli.start(*agent_command())  # makes the store and its id
    store_id = cli.store.store_id
    assert store_id
    sid = "c0ea7ed001"
    owned_session(tmux_cli, sid, store_id)
    make_record(cli.store, sid, cli.socket_path, Status.CREATED)
    out = cli.run("stop", sid, "--timeout", "0", code=None)
    assert out.returncode == 0, describe(out)
    assert cli.show(sid)["status"] == "stopped"
    wait_until(lambda: f"amux-{sid}" not in _session_ids(tmux_cli), what="session killed")


# --- secrets -----------------------------------------------------------------------------


def test_a_secret_value_given_again_under_another_name_is_masked(cli: Cli) -> None:
    """``--secret KEY=VALUE`` "masks anything", and the same value in the agent's argv
    is masked; the same value under another ``-e`` name is stored in clear."""
    canary = "qqCanary7731qq"
    sid = cli.start(
        *agent_command(),
        opts=("--secret", f"TOKENISH={canary}", "-e", f"PLAIN={canary}"),
    )
    files = [
        str(p.relative_to(cli.root))
        for p in (cli.root / ".amux").rglob("*")
        if p.is_file() and not p.name.endswith(".log") and canary.encode() in p.read_bytes()
    ]
    shown = cli.run("show", "--json", sid).stdout
    assert files == [] and canary not in shown, f"{files} {shown}"


def test_error_messages_are_not_mangled_by_redaction(cli: Cli) -> None:
    """A reference containing ``passwd`` turns the rest of the one-line error into
    ``***`` ("invalid session id '../../etc/passwd': *** 3-64 characters"): the
    redactor takes ``passwd': expected`` for a credential."""
    out = cli.run("show", "../../etc/passwd", code=2)
    assert "expected 3-64 characters" in out.stderr, describe(out)
