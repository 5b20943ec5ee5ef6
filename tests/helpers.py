"""Helpers shared by the tests: waiting, tmux servers, records, sessions, the CLI."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

import pytest

from amux_tmux.model import Session, Status, format_time, utcnow
from amux_tmux.store import FileStore
from amux_tmux.tmux import socket_path_for

T = TypeVar("T")
AGENT = pathlib.Path(__file__).parent / "agents" / "agent.py"
ID_RE = re.compile(r"[0-9a-f]{10}")


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
            if gone_within(pid, 2.0):
                break
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
    pathlib.Path(socket_path).unlink(missing_ok=True)


def gone_within(pid: int, timeout: float) -> bool:
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


def tmux_runner(socket_path: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Return a function running raw tmux on ``socket_path`` (an oracle independent of
    amux_tmux.tmux)."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-S", socket_path, *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )

    return run


def procs_holding(needle: bytes, kind: str, skip: Collection[int] = ()) -> list[str]:
    """Return the ``/proc/PID/<kind>`` files (``cmdline``, ``environ``) holding ``needle``,
    but for pids in ``skip``; processes that vanish or are not ours to read are passed."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in skip:
            continue
        try:
            with open(f"/proc/{entry.name}/{kind}", "rb") as f:
                data = f.read()
        except OSError:
            continue
        if needle in data:
            found.append(f"{entry.name}: {data[:200]!r}")
    return found


# --- records and sessions of a store ---------------------------------------------


def make_record(
    store: FileStore, sid: str, socket_path: str, status: Status = Status.RUNNING, **fields: Any
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
            **fields,
        )
    )


def owned_session(
    tmux_cli: Callable[..., subprocess.CompletedProcess[str]],
    sid: str,
    store_id: str | None,
    name: str | None = None,
    command: tuple[str, ...] = ("sleep", "600"),
) -> str:
    """Create a session the way a store owns it (named amux-<id>, tagged @amux_id and
    @amux_store); ``store_id=None`` makes an untagged, legacy-looking one. Returns the
    tmux session id."""
    name = name or f"amux-{sid}"
    tags = ["set-option", "-t", f"={name}:", "@amux_id", sid]
    if store_id is not None:
        tags += [";", "set-option", "-t", f"={name}:", "@amux_store", store_id]
    out = tmux_cli(
        "new-session", "-d", "-s", name, "-P", "-F", "#{session_id}", *command, ";", *tags
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[0]


def backdate(store: FileStore, sid: str, seconds: float) -> None:
    """Rewrite updated_at in the file, as if the record had last changed ``seconds`` ago."""
    when = format_time(dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds))
    path = store.path_for(sid)
    lines = path.read_text().splitlines()
    lines = [f"updated_at: '{when}'" if ln.startswith("updated_at:") else ln for ln in lines]
    path.write_text("\n".join(lines) + "\n")


# --- the CLI as a subprocess -----------------------------------------------------


def describe(result: subprocess.CompletedProcess[str]) -> str:
    """Return a finished run as text for an assertion message."""
    return (
        f"argv={result.args!r}\nexit={result.returncode}\n"
        f"stdout={result.stdout!r}\nstderr={result.stderr!r}"
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    """Check the contract for failures: exit ``code``, one stderr line, no traceback."""
    assert result.returncode == code, describe(result)
    assert "Traceback" not in result.stderr, describe(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, describe(result)
    assert result.stderr.endswith("\n")
    assert lines[0].startswith("amux-tmux: error: "), describe(result)
    assert result.stdout == "", describe(result)
    return lines[0]


@dataclasses.dataclass
class Cli:
    """Runs ``python -m amux_tmux --root ROOT --socket SOCKET ...`` and keeps every run."""

    root: pathlib.Path
    socket: str
    runs: list[subprocess.CompletedProcess[str]] = dataclasses.field(default_factory=list)

    @property
    def socket_path(self) -> str:
        return socket_path_for(self.socket)

    @property
    def store(self) -> FileStore:
        return FileStore(self.root)

    def argv(self, *args: str) -> list[str]:
        return [
            sys.executable, "-m", "amux_tmux", "--root", str(self.root),
            "--socket", self.socket, *args,
        ]  # fmt: skip

    def run(
        self,
        *args: str,
        code: int | None = 0,
        env: Mapping[str, str] | None = None,
        timeout: float = 30,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the CLI; check its exit code unless ``code`` is None."""
        result = subprocess.run(
            self.argv(*args),
            capture_output=True,
            text=True,
            env=dict(os.environ if env is None else env),
            cwd=self.root,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
        self.runs.append(result)
        if code is not None:
            assert result.returncode == code, describe(result)
            assert "Traceback" not in result.stderr, describe(result)
        return result

    def json(self, command: str, *args: str, **kw: Any) -> Any:
        """Run ``command --json ARGS...`` and parse what it prints."""
        return json.loads(self.run(command, "--json", *args, **kw).stdout)

    def start(self, *command: str, opts: tuple[str, ...] = (), **kw: Any) -> str:
        """Start ``command``; return the printed id."""
        out = self.run("start", *opts, "--", *command, **kw).stdout
        assert ID_RE.fullmatch(out.strip()), out
        return out.strip()

    def show(self, ref: str) -> dict[str, Any]:
        data: dict[str, Any] = self.json("show", ref)
        return data

    def wait_status(self, ref: str, status: str, timeout: float = 15) -> dict[str, Any]:
        """Poll ``show`` until the record has ``status``; return it."""
        last: list[dict[str, Any]] = [{}]

        def check() -> dict[str, Any] | None:
            last[0] = self.show(ref)
            return last[0] if last[0]["status"] == status else None

        try:
            return wait_until(check, timeout=timeout, what=f"{ref} to become {status}")
        except pytest.fail.Exception:
            pytest.fail(f"{ref} never became {status}; last seen: {last[0]}")

    def logs_contain(self, ref: str, text: str) -> Callable[[], bool]:
        return lambda: text in self.run("logs", ref).stdout

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Raw tmux on the amux socket: the oracle."""
        return tmux_runner(self.socket_path)(*args)

    def tmux_sessions(self) -> list[str]:
        return self.tmux("list-sessions", "-F", "#{session_name}").stdout.split()
