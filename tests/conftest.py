"""Shared fixtures: every test runs with its own TMUX_TMPDIR and a guard on tmux."""

from __future__ import annotations

import itertools
import os
import pathlib
import shutil
import subprocess
from collections.abc import Callable, Iterator

import pytest

from amux_tmux.manager import Manager
from amux_tmux.store import FileStore
from amux_tmux.tmux import socket_path_for
from tests.helpers import (  # re-exported for older imports
    AGENT,
    Cli,
    agent_command,
    backdate,
    kill_server,
    make_record,
    owned_session,
    tmux_runner,
    wait_until,
)

__all__ = [
    "AGENT",
    "agent_command",
    "backdate",
    "kill_server",
    "make_record",
    "owned_session",
    "wait_until",
]

# The fake agent is a program, not a module: importing it (for doctests) would run it.
collect_ignore = ["agents"]


@pytest.fixture(autouse=True, scope="session")
def _private_tmux_tmpdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pathlib.Path]:
    """Point every tmux at a private directory so the user's servers are unreachable.

    A test that forgets ``-L``/``-S`` would talk to ``<this dir>/tmux-UID/default``;
    :func:`_no_default_server` fails it if that socket ever appears.
    """
    tmpdir = pathlib.Path(
        os.environ.get("AMUX_TEST_TMUX_TMPDIR") or tmp_path_factory.mktemp("tmux-tmpdir")
    )
    saved = {
        k: os.environ.get(k)
        for k in (
            "TMUX_TMPDIR",
            "TMUX",
            "TMUX_PANE",
            "AMUX_ROOT",
            "AMUX_TMUX_SOCKET",
            "AMUX_SESSION_ID",
        )
    }
    os.environ["TMUX_TMPDIR"] = str(tmpdir)
    for key in ("TMUX", "TMUX_PANE", "AMUX_ROOT", "AMUX_TMUX_SOCKET", "AMUX_SESSION_ID"):
        os.environ.pop(key, None)
    yield tmpdir
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    _kill_all_servers(tmpdir)
    # pytest would keep this run's temp dirs until its next run; they go now, passed or
    # failed (a failing test prints what it saw).
    shutil.rmtree(tmp_path_factory.getbasetemp(), ignore_errors=True)


def _kill_all_servers(tmpdir: pathlib.Path) -> None:
    """Kill every tmux server a test left behind under ``tmpdir``."""
    for sock_dir in tmpdir.glob("tmux-*"):
        for sock in sock_dir.iterdir():
            kill_server(str(sock))


@pytest.fixture(autouse=True)
def _no_default_server(_private_tmux_tmpdir: pathlib.Path) -> Iterator[None]:
    """Fail any test that reached tmux's default socket instead of a private one."""
    default = _private_tmux_tmpdir / f"tmux-{os.geteuid()}" / "default"
    yield
    if default.exists():
        _kill_all_servers(_private_tmux_tmpdir)
        pytest.fail("a test reached the default tmux server; always pass -L or -S")


@pytest.fixture
def store(tmp_path: pathlib.Path) -> FileStore:
    """A FileStore in a fresh temporary root."""
    return FileStore(tmp_path)


@pytest.fixture
def socket_name(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh tmux socket name; its server is killed after the test, pass or fail."""
    name = f"amuxt{os.getpid()}x{next(_socket_counter)}"
    yield name
    kill_server(socket_path_for(name))


@pytest.fixture
def manager(store: FileStore, socket_name: str) -> Manager:
    """A Manager on a private socket with a short grace period."""
    return Manager(store, socket=socket_name, grace=30.0)


@pytest.fixture
def tmux_cli(socket_name: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run raw tmux on the test socket (an oracle independent of amux_tmux.tmux). Its
    directory is made first: with ``-S`` tmux does not create it, and fails with exit
    status 0 when it is missing."""
    path = socket_path_for(socket_name)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    return tmux_runner(path)


@pytest.fixture
def cli(tmp_path: pathlib.Path, socket_name: str) -> Cli:
    """The CLI on a fresh project root and this test's private socket."""
    root = tmp_path / "project"
    root.mkdir()
    return Cli(root, socket_name)


_socket_counter = itertools.count()
