"""Shared fixtures: every test runs with its own TMUX_TMPDIR and a guard on tmux."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import itertools
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from amux_tmux.manager import Manager
from amux_tmux.model import Session, Status, format_time, utcnow
from amux_tmux.store import FileStore
from amux_tmux.tmux import socket_path_for

T = TypeVar("T")


@pytest.fixture(autouse=True, scope="session")
def _private_tmux_tmpdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pathlib.Path]:
    """Point every tmux at a private directory so the user's servers are unreachable.

    A test that forgets ``-L``/``-S`` would talk to ``<this dir>/tmux-UID/default``;
    :func:`_no_default_server` fails it if that socket ever appears.
    """
    tmpdir = pathlib.Path(
        os.environ.get("AMUX_TEST_TMUX_TMPDIR") or tmp_path_factory.mktemp("tmux-tmpdir")
    )
    saved = {k: os.environ.get(k) for k in ("TMUX_TMPDIR", "TMUX", "TMUX_PANE")}
    os.environ["TMUX_TMPDIR"] = str(tmpdir)
    os.environ.pop("TMUX", None)
    os.environ.pop("TMUX_PANE", None)
    yield tmpdir
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    _kill_all_servers(tmpdir)


def _kill_all_servers(tmpdir: pathlib.Path) -> None:
    """Kill every tmux server a test left behind under ``tmpdir``."""
    for sock_dir in tmpdir.glob("tmux-*"):
        for sock in sock_dir.iterdir():
            kill_server(str(sock))


def kill_server(socket_path: str) -> None:
    """Stop the tmux server on ``socket_path`` for sure, then remove its socket.

    ``kill-server`` alone is not enough: tmux 3.3a servers holding an unreaped agent
    were seen here to outlive it for good, so the server's pid gets SIGTERM, then SIGKILL.
    """
    tmux = shutil.which("tmux")
    pid = None
    if tmux and os.path.exists(socket_path):
        run = functools.partial(subprocess.run, capture_output=True, text=True, check=False)
        with contextlib.suppress(subprocess.TimeoutExpired):
            out = run([tmux, "-S", socket_path, "display-message", "-p", "#{pid}"], timeout=5)
            pid = int(out.stdout) if out.stdout.strip().isdigit() else None
        with contextlib.suppress(subprocess.TimeoutExpired):
            run([tmux, "-S", socket_path, "kill-server"], timeout=5)
    if pid is not None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if _gone_within(pid, 2.0):
                break
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
    pathlib.Path(socket_path).unlink(missing_ok=True)


def _gone_within(pid: int, timeout: float) -> bool:
    """Whether ``pid`` exits (or is a zombie: PID 1 here may never reap it) in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state == b"Z":
            return True
        time.sleep(0.01)
    return False


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


AGENT = pathlib.Path(__file__).parent / "agents" / "agent.py"


def wait_until(predicate: Callable[[], T | None], timeout: float = 10.0, what: str = "") -> T:
    """Poll ``predicate`` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def agent_command(*args: str) -> list[str]:
    """Return the argv of the test agent (see tests/agents/agent.py)."""
    return [sys.executable, str(AGENT), *args]


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
    """Run raw tmux on the test socket (an oracle independent of amux_tmux.tmux)."""
    path = socket_path_for(socket_name)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-S", path, *args], capture_output=True, text=True, timeout=10, check=False
        )

    return run


_socket_counter = itertools.count()


# --- reconcile worlds -----------------------------------------------------------


def make_record(
    store: FileStore, sid: str, socket_path: str, status: Status = Status.RUNNING
) -> Session:
    """Write a record of a session on ``socket_path`` (no tmux session is made)."""
    now = utcnow()
    return store.create(
        Session(
            id=sid,
            status=status,
            created_at=now,
            updated_at=now,
            tmux_socket=socket_path,
            tmux_session=f"amux-{sid}",
        )
    )


def owned_session(
    tmux_cli: Callable[..., subprocess.CompletedProcess[str]], sid: str, name: str | None = None
) -> None:
    """Create a session the way amux would own it: named amux-<id>, tagged @amux_id."""
    name = name or f"amux-{sid}"
    out = tmux_cli(
        "new-session", "-d", "-s", name, "sleep", "600",
        ";", "set-option", "-t", f"={name}:", "@amux_id", sid,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr


def backdate(store: FileStore, sid: str, seconds: float) -> None:
    """Rewrite updated_at in the file, as if the record had last changed ``seconds`` ago."""
    when = format_time(dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds))
    path = store.path_for(sid)
    lines = path.read_text().splitlines()
    lines = [f"updated_at: '{when}'" if ln.startswith("updated_at:") else ln for ln in lines]
    path.write_text("\n".join(lines) + "\n")
