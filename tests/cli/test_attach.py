"""``attach`` on real terminals: a pane of a separate "viewer" tmux server is the terminal."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterator

import pytest

from amux_tmux.tmux import socket_path_for
from tests.cli.conftest import Cli, assert_one_line_error
from tests.conftest import agent_command, kill_server, wait_until

Tmux = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def viewer(socket_name: str) -> Iterator[Tmux]:
    """Raw tmux on a second private server whose panes play the user's terminal."""
    path = socket_path_for(f"{socket_name}v")  # beside the amux socket: swept at session end

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-S", path, *args], capture_output=True, text=True, timeout=10, check=False
        )

    yield run
    kill_server(path)


def _in_viewer(viewer: Tmux, argv: list[str]) -> None:
    """Run ``argv`` in a new viewer window, outside tmux as far as it knows."""
    result = viewer("new-session", "-d", "-x", "120", "-y", "40", "--", "env", "-u", "TMUX", *argv)
    assert result.returncode == 0, result.stderr


def _clients_on(cli: Cli, session: str) -> Callable[[], bool]:
    def check() -> bool:
        listed = cli.tmux("list-clients", "-F", "#{client_session}").stdout.split()
        return session in listed

    return check


@pytest.mark.parametrize("how", ["id", "prefix", "name"])
def test_attach_from_outside_tmux(cli: Cli, viewer: Tmux, how: str) -> None:
    """attach REF (id, unique prefix or name) execs a tmux client on the session."""
    sid = cli.start(*agent_command(), opts=("--name", "watched"))
    other = cli.start(*agent_command())  # a second session the client must not land on
    ref = {"id": sid, "prefix": sid[:5], "name": "watched"}[how]
    if how == "prefix" and other.startswith(ref):
        ref = sid  # 1 in a million: the two random ids share 5 digits
    _in_viewer(viewer, cli.argv("attach", ref))
    wait_until(_clients_on(cli, f"amux-{sid}"), what="a client attached to the session")
    clients = cli.tmux("list-clients", "-F", "#{client_session}").stdout.split()
    assert clients == [f"amux-{sid}"]
    # The attached terminal shows the agent.
    wait_until(_screen_shows(viewer, "agent ready"), what="the agent on the viewer's screen")


def _screen_shows(viewer: Tmux, text: str) -> Callable[[], bool]:
    """Whether the viewer's (only) terminal shows ``text``."""

    def check() -> bool:
        [name] = viewer("list-sessions", "-F", "#{session_name}").stdout.split()
        return text in viewer("capture-pane", "-p", "-t", f"={name}:").stdout

    return check


def test_start_attach(cli: Cli, viewer: Tmux) -> None:
    """start --attach starts the session, prints its id, then attaches this terminal."""
    _in_viewer(viewer, cli.argv("start", "--attach", "--name", "att", "--", *agent_command()))

    def attached() -> str | None:
        listed = cli.tmux("list-clients", "-F", "#{client_session}").stdout.split()
        return listed[0] if listed else None

    session = wait_until(attached, what="a client attached by start --attach")
    assert session == f"amux-{cli.show('att')['id']}"


def test_attach_inside_the_same_server_switches_the_client(cli: Cli, viewer: Tmux) -> None:
    """Run from a pane of the amux server itself, attach switches the current client."""
    sid = cli.start(*agent_command())
    made = cli.tmux("new-session", "-d", "-s", "shell", "-x", "120", "-y", "40", "--", "sh")
    assert made.returncode == 0, made.stderr
    _in_viewer(viewer, ["tmux", "-S", cli.socket_path, "attach-session", "-t", "=shell"])
    wait_until(_clients_on(cli, "shell"), what="the viewer's client on the shell session")

    command = shlex.join(cli.argv("attach", sid))
    typed = cli.tmux("send-keys", "-t", "=shell:", "-l", "--", command)
    assert typed.returncode == 0, typed.stderr
    cli.tmux("send-keys", "-t", "=shell:", "Enter")
    wait_until(_clients_on(cli, f"amux-{sid}"), what="the client switched to the session")
    assert cli.tmux("list-clients", "-F", "#{client_session}").stdout.split() == [f"amux-{sid}"]


def test_attach_to_an_exited_session_shows_its_last_screen(cli: Cli, viewer: Tmux) -> None:
    """The dead pane of an exited agent stays attachable (remain-on-exit)."""
    sid = cli.start(*agent_command("--exit", "0"))
    cli.wait_status(sid, "completed")
    _in_viewer(viewer, cli.argv("attach", sid))
    wait_until(_clients_on(cli, f"amux-{sid}"), what="a client on the exited session")
    # The viewer's terminal now shows the amux session (its status line names it).
    wait_until(_screen_shows(viewer, f"[amux-{sid[:4]}"), what="the session on screen")


def test_attach_from_inside_another_tmux_server_is_refused(cli: Cli) -> None:
    """$TMUX naming another server: a clear one-line error and exit 1, no exec."""
    sid = cli.start(*agent_command())
    env = {**os.environ, "TMUX": "/tmp/some-other-server,4242,0"}
    line = assert_one_line_error(cli.run("attach", sid, code=None, env=env), 1)
    assert "already inside tmux (/tmp/some-other-server)" in line
    tmux = shutil.which("tmux")
    assert line.endswith(f"run: TMUX= {tmux} -S {cli.socket_path} attach-session -t =amux-{sid}")
    assert cli.show(sid)["state"] == "alive"
