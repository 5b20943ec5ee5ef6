"""The real CLI as a subprocess, on the test's root and private tmux socket."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from amux_tmux.tmux import socket_path_for
from tests.conftest import wait_until

ID_RE = re.compile(r"[0-9a-f]{10}")


def describe(result: subprocess.CompletedProcess[str]) -> str:
    """Return a failed run as text for an assertion message."""
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
    ) -> subprocess.CompletedProcess[str]:
        """Run the CLI; check its exit code unless ``code`` is None."""
        result = subprocess.run(
            self.argv(*args),
            capture_output=True,
            text=True,
            env=dict(os.environ if env is None else env),
            cwd=self.root,
            stdin=subprocess.DEVNULL,
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
        began = time.monotonic()

        def check() -> dict[str, Any] | None:
            last[0] = self.show(ref)
            if last[0]["status"] == status:
                return last[0]
            if last[0].get("state") == "exited" and time.monotonic() - began > 1.0:
                # tmux 3.3a now and then misses the SIGCHLD of a pane that exits at once:
                # the pane is dead, its agent an unreaped zombie, and no status is known
                # until another child of the server ends. amux waits for that forever
                # (test_unreaped_agent_is_still_recorded, xfail); a short-lived child
                # makes tmux reap it, so the other tests test what they mean to.
                self.tmux("run-shell", "true")
            return None

        try:
            return wait_until(check, timeout=timeout, what=f"{ref} to become {status}")
        except pytest.fail.Exception:
            pytest.fail(f"{ref} never became {status}; last seen: {last[0]}")

    def logs_contain(self, ref: str, text: str) -> Callable[[], bool]:
        return lambda: text in self.run("logs", ref).stdout

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Raw tmux on the amux socket: the oracle."""
        return subprocess.run(
            ["tmux", "-S", self.socket_path, *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )

    def tmux_sessions(self) -> list[str]:
        return self.tmux("list-sessions", "-F", "#{session_name}").stdout.split()


@pytest.fixture
def cli(tmp_path: pathlib.Path, socket_name: str) -> Cli:
    """The CLI on this test's root (``tmp_path``) and private socket."""
    return Cli(tmp_path, socket_name)
