"""``attach`` on real terminals: panes of separate private tmux servers play the user's
terminal and the user's own tmux."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable, Iterator
from typing import NamedTuple

import pytest

from amux_tmux.tmux import socket_path_for
from tests.cli.conftest import Cli, assert_one_line_error
from tests.conftest import agent_command, kill_server, wait_until

Tmux = Callable[..., subprocess.CompletedProcess[str]]


def _server(path: str) -> Tmux:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-S", path, *args], capture_output=True, text=True, timeout=10, check=False
        )

    return run


@pytest.fixture
def viewer(socket_name: str) -> Iterator[Tmux]:
    """Raw tmux on a second private server whose panes play the user's terminal."""
    path = socket_path_for(f"{socket_name}v")  # beside the amux socket: swept at session end
    yield _server(path)
    kill_server(path)


@pytest.fixture
def outer(socket_name: str) -> Iterator[tuple[Tmux, str]]:
    """Raw tmux on a third private server: the user's own tmux, with its socket path."""
    path = socket_path_for(f"{socket_name}o")
    yield _server(path), path
    kill_server(path)


def _in_viewer(viewer: Tmux, argv: list[str]) -> None:
    """Run ``argv`` in a new viewer session, outside tmux as far as it knows."""
    result = viewer("new-session", "-d", "-x", "120", "-y", "40", "--", "env", "-u", "TMUX", *argv)
    assert result.returncode == 0, result.stderr


def _clients(tmux: Tmux) -> list[str]:
    return tmux("list-clients", "-F", "#{client_session}").stdout.split()


def _screen(tmux: Tmux, target: str) -> str:
    return tmux("capture-pane", "-p", "-t", target).stdout


class How(NamedTuple):
    test_id: str
    ref: Callable[[str], str]


HOWS = [
    How("by-id", lambda sid: sid),
    How("by-unique-prefix", lambda sid: sid[:6]),
    How("by-name", lambda sid: "watched"),
]


def test_attach_from_outside_tmux(cli: Cli, viewer: Tmux) -> None:
    """attach REF (id, unique prefix or name) execs a tmux client on that session, never
    on the other one."""
    sid = cli.start(*agent_command("--print", "on-screen"), opts=("--name", "watched"))
    other = cli.start(*agent_command())  # a second session the client must not land on
    for how in HOWS:
        ref = how.ref(sid)
        if other.startswith(ref):
            ref = sid  # 1 in 16 million: the two random ids share 6 digits
        made = viewer("new-session", "-d", "-s", how.test_id, "-x", "120", "-y", "40",
                      "--", "env", "-u", "TMUX", *cli.argv("attach", ref))  # fmt: skip
        assert made.returncode == 0, made.stderr
        wait_until(lambda: _clients(cli.tmux) == [f"amux-{sid}"], what=how.test_id)
        target = f"={how.test_id}:"
        wait_until(lambda: "on-screen" in _screen(viewer, target), what="the agent")
        viewer("kill-session", "-t", f"={how.test_id}")  # its client detaches
        wait_until(lambda: _clients(cli.tmux) == [], what="the client to go")


def test_start_attach_from_outside_tmux(cli: Cli, viewer: Tmux) -> None:
    """start --attach starts the session, then attaches this terminal to it."""
    _in_viewer(viewer, cli.argv("start", "--attach", "--name", "att", "--", *agent_command()))
    wait_until(lambda: _clients(cli.tmux), what="a client attached by start --attach")
    assert _clients(cli.tmux) == [f"amux-{cli.show('att')['id']}"]


def test_attach_to_an_exited_session_shows_its_last_screen(cli: Cli, viewer: Tmux) -> None:
    """The dead pane of an exited agent stays attachable (remain-on-exit), and a terminal
    of 40 rows shows what the agent printed last, not only tmux's "Pane is dead"."""
    sid = cli.start(*agent_command("--print", "goodbye", "--exit", "0"))
    cli.wait_status(sid, "completed")
    _in_viewer(viewer, cli.argv("attach", sid))
    wait_until(lambda: _clients(cli.tmux) == [f"amux-{sid}"], what="a client on the session")
    [name] = viewer("list-sessions", "-F", "#{session_name}").stdout.split()
    wait_until(
        lambda: "Pane is dead" in _screen(viewer, f"={name}:"), what="the dead pane on screen"
    )
    screen = _screen(viewer, f"={name}:")
    assert "[amux-" in screen  # the session's status line
    assert "goodbye" in screen, screen


def test_attach_inside_the_same_server_switches_the_client(cli: Cli, viewer: Tmux) -> None:
    """Run from a pane of the amux server itself, attach switches the current client."""
    sid = cli.start(*agent_command())
    made = cli.tmux("new-session", "-d", "-s", "shell", "-x", "120", "-y", "40", "--", "sh")
    assert made.returncode == 0, made.stderr
    _in_viewer(viewer, ["tmux", "-S", cli.socket_path, "attach-session", "-t", "=shell"])
    wait_until(lambda: _clients(cli.tmux) == ["shell"], what="the viewer's client on 'shell'")

    command = shlex.join(cli.argv("attach", sid))
    typed = cli.tmux("send-keys", "-t", "=shell:", "-l", "--", command)
    assert typed.returncode == 0, typed.stderr
    cli.tmux("send-keys", "-t", "=shell:", "Enter")
    wait_until(lambda: _clients(cli.tmux) == [f"amux-{sid}"], what="the client switched")


def _outer_session(outer: Tmux, name: str, argv: list[str]) -> None:
    """Run ``argv`` in a pane of the outer tmux (tmux sets its TMUX), then keep the pane
    to read the exit status."""
    script = f"{shlex.join(argv)}; echo exit=$?; sleep 600"
    made = outer("new-session", "-d", "-s", name, "-x", "150", "-y", "40", "sh", "-c", script)
    assert made.returncode == 0, made.stderr


def _first_window(outer: Tmux) -> str:
    """The window the outer session started with (new windows get selected)."""
    return outer("list-windows", "-a", "-F", "#{window_id}").stdout.split()[0]


def _outer_window_showing(outer: Tmux, text: str) -> Callable[[], str | None]:
    """The outer window (not the first) whose screen shows ``text``."""

    def check() -> str | None:
        windows = outer("list-windows", "-a", "-F", "#{window_id}").stdout.split()
        for window in windows[1:]:
            if text in _screen(outer, window):
                return window
        return None

    return check


def test_attach_inside_another_tmux_opens_a_window_there(
    cli: Cli, outer: tuple[Tmux, str]
) -> None:
    """From a pane of the user's own tmux (another server), attach --in window opens the
    amux session in a new window of THAT server, which shows the agent."""
    tmux, _ = outer
    sid = cli.start(*agent_command("--print", "hello-from-the-agent"), opts=("--name", "inner"))
    _outer_session(tmux, "work", cli.argv("attach", "inner", "--in", "window"))
    window = wait_until(
        _outer_window_showing(tmux, "hello-from-the-agent"), what="the agent in an outer window"
    )
    assert "[amux-" in _screen(tmux, window)  # the amux session's status line
    first = _first_window(tmux)
    wait_until(lambda: "exit=0" in _screen(tmux, first), what="attach to exit 0")
    assert _clients(cli.tmux) == [f"amux-{sid}"]
    assert cli.show(sid)["state"] == "alive"


def test_start_attach_inside_another_tmux_opens_a_window_there(
    cli: Cli, outer: tuple[Tmux, str]
) -> None:
    """start --attach --in window from inside the user's tmux: the session is started
    (its id printed) and shown in a new window of the user's tmux."""
    tmux, _ = outer
    argv = cli.argv("start", "--attach", "--in", "window", "--name", "fresh", "--")
    _outer_session(tmux, "work", [*argv, *agent_command("--print", "started-and-shown")])
    wait_until(_outer_window_showing(tmux, "started-and-shown"), what="the new agent")
    sid = cli.show("fresh")["id"]
    first = _first_window(tmux)
    wait_until(lambda: "exit=0" in _screen(tmux, first), what="start to exit 0")
    assert _screen(tmux, first).startswith(f"{sid}\nexit=0\n")  # the id was printed first
    assert _clients(cli.tmux) == [f"amux-{sid}"]


def test_attach_inside_another_tmux_opens_a_popup_on_its_client(
    cli: Cli, outer: tuple[Tmux, str], viewer: Tmux
) -> None:
    """The default, --in popup: the user's tmux (with a client, on the viewer's terminal)
    shows the session in a popup: a tmux client of the amux server runs in it."""
    tmux, path = outer
    sid = cli.start(*agent_command())
    made = tmux("new-session", "-d", "-s", "work", "-x", "150", "-y", "40", "--", "sh")
    assert made.returncode == 0, made.stderr
    _in_viewer(viewer, ["tmux", "-S", path, "attach-session", "-t", "=work"])
    wait_until(lambda: _clients(tmux) == ["work"], what="the user's client")
    tmux("send-keys", "-t", "=work:", "-l", "--", shlex.join(cli.argv("attach", sid)))
    tmux("send-keys", "-t", "=work:", "Enter")
    wait_until(lambda: _clients(cli.tmux) == [f"amux-{sid}"], what="a client in the popup")
    assert tmux("list-windows", "-t", "=work", "-F", "#{window_id}").stdout.count("@") == 1


def test_attach_of_an_unknown_ref_exits_3(cli: Cli) -> None:
    """Nothing to attach to: exit 3, one line, and no tmux server was started."""
    cli.start(*agent_command())
    line = assert_one_line_error(cli.run("attach", "nosuch1", code=None), 3)
    assert line == "amux-tmux: error: no session matches 'nosuch1'"
    assert len(cli.tmux_sessions()) == 1
