"""The pane launcher: secrets from a FIFO into the agent's environment, then exec."""

from __future__ import annotations

import errno
import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Iterator

import pytest

from amux_tmux import launch
from tests.conftest import wait_until

LAUNCHER = str(pathlib.Path(launch.__file__).resolve())
#: Prints its pid, then the given variables as JSON; exits with $EXIT_WITH (default 0).
PROBE = (
    "import json, os, sys; print(os.getpid()); "
    "print(json.dumps({k: os.environ.get(k) for k in sys.argv[1:]}), flush=True); "
    "sys.exit(int(os.environ.get('EXIT_WITH', '0')))"
)


@pytest.fixture
def fifo(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    path = tmp_path / "secrets.fifo"
    os.mkfifo(path, 0o600)
    yield path
    path.unlink(missing_ok=True)


def _launch(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Run the launcher the way the manager does: by path, isolated, without site."""
    return subprocess.Popen(
        [sys.executable, "-I", "-S", LAUNCHER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _write_when_read(path: pathlib.Path, payload: bytes) -> None:
    """Open the FIFO for writing once the launcher has opened it for reading."""

    def try_open() -> int | None:
        try:
            return os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as err:
            if err.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
            return None

    fd = wait_until(try_open, timeout=10, what="the launcher to open the FIFO")
    try:
        os.set_blocking(fd, True)
        os.write(fd, payload)
    finally:
        os.close(fd)


def test_secrets_reach_the_exec_d_command_and_the_fifo_is_removed(fifo: pathlib.Path) -> None:
    """The command sees the secrets, runs as the launcher's own pid, and the FIFO is gone."""
    canary = "sk-ant-LAUNCH-CANARY-0123456789"
    env = {**os.environ, "ANTHROPIC_API_KEY": "inherited-value", "KEEP": "kept"}
    proc = _launch(
        "--secrets",
        str(fifo),
        "--",
        sys.executable,
        "-c",
        PROBE,
        "ANTHROPIC_API_KEY",
        "DB_PASSWORD",
        "KEEP",
        env=env,
    )
    _write_when_read(
        fifo, json.dumps({"ANTHROPIC_API_KEY": canary, "DB_PASSWORD": "hunter2"}).encode()
    )
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    pid_line, env_line = out.splitlines()
    assert int(pid_line) == proc.pid  # exec'd: the agent IS the pane's process
    # The FIFO's secrets override the inherited value; other variables pass through.
    assert json.loads(env_line) == {
        "ANTHROPIC_API_KEY": canary,
        "DB_PASSWORD": "hunter2",
        "KEEP": "kept",
    }
    assert not fifo.exists()
    assert canary not in err


def test_exit_status_is_the_command_s(fifo: pathlib.Path) -> None:
    """Exec means the launcher's exit status is the agent's."""
    proc = _launch("--secrets", str(fifo), "--", sys.executable, "-c", PROBE)
    _write_when_read(fifo, json.dumps({"EXIT_WITH": "7"}).encode())
    proc.communicate(timeout=20)
    assert proc.returncode == 7
    assert not fifo.exists()


def test_without_secrets_and_without_double_dash() -> None:
    """No ``--secrets``: the command runs with the launcher's environment; ``--`` is optional."""
    env = {**os.environ, "MODE": "review"}
    for args in (["--"], []):
        proc = _launch(*args, sys.executable, "-c", PROBE, "MODE", env=env)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0
        assert json.loads(out.splitlines()[1]) == {"MODE": "review"}


def test_empty_payload_starts_the_command(fifo: pathlib.Path) -> None:
    """A writer that sends nothing means no secrets, not a failure."""
    proc = _launch("--secrets", str(fifo), sys.executable, "-c", PROBE, "X")
    _write_when_read(fifo, b"")
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert json.loads(out.splitlines()[1]) == {"X": None}
    assert not fifo.exists()


def test_missing_command_exits_127(fifo: pathlib.Path) -> None:
    """A command that does not exist: exit 127 with a message; the FIFO is still removed."""
    proc = _launch("--secrets", str(fifo), "--", "definitely-not-a-command-xyz")
    _write_when_read(fifo, json.dumps({"API_KEY": "sk-ant-never-shown-123456"}).encode())
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == launch.EXIT_NOT_FOUND == 127
    assert "command not found: definitely-not-a-command-xyz" in err
    assert "sk-ant-never-shown" not in err
    assert "Traceback" not in err
    assert not fifo.exists()


def test_missing_command_without_secrets_exits_127() -> None:
    proc = _launch("--", "/nonexistent/dir/agent")
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 127
    assert "command not found" in err


def test_unexecutable_file_exits_126(tmp_path: pathlib.Path) -> None:
    """A file that is not executable: exit 126 (cannot run), like a shell."""
    script = tmp_path / "agent.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    proc = _launch("--", str(script))
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == launch.EXIT_CANNOT_EXEC == 126
    assert "cannot run" in err


def test_no_command_exits_2() -> None:
    for args in ([], ["--"], ["--secrets", "/nonexistent.fifo"]):
        proc = _launch(*args)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 2, args
        assert "no command given" in err


@pytest.mark.parametrize(
    "payload",
    [b'["not", "a", "map"]', b'{"KEY": 1}', b"{not json", b'{"A": "x", "B": null}'],
    ids=["list", "non-string-value", "bad-json", "null-value"],
)
def test_bad_payload_does_not_start_the_command(
    fifo: pathlib.Path, tmp_path: pathlib.Path, payload: bytes
) -> None:
    """A malformed secret payload: exit 1, the agent never runs, nothing leaks to stderr."""
    marker = tmp_path / "ran"
    proc = _launch(
        "--secrets",
        str(fifo),
        "--",
        sys.executable,
        "-c",
        f"open({str(marker)!r}, 'w').close()",
    )
    _write_when_read(fifo, payload)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 1
    assert "could not read secrets" in err
    assert "Traceback" not in err
    assert not marker.exists()
    assert not fifo.exists()


def test_missing_fifo_fails_cleanly(tmp_path: pathlib.Path) -> None:
    """A FIFO that is not there: exit 1 and the command is not run."""
    proc = _launch("--secrets", str(tmp_path / "gone.fifo"), "--", "true")
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 1
    assert "could not read secrets: FileNotFoundError" in err


def test_gives_up_when_no_writer_comes(fifo: pathlib.Path) -> None:
    """A writer that never opens the FIFO: the launcher times out instead of hanging."""
    code = (
        "import importlib.util as u, sys; spec = u.spec_from_file_location('l', sys.argv[1]); "
        "launch = u.module_from_spec(spec); spec.loader.exec_module(launch); "
        "launch.FIFO_WAIT_SECONDS = 1; sys.exit(launch.main(sys.argv[2:]))"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            code,
            LAUNCHER,
            "--secrets",
            str(fifo),
            "--",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert proc.returncode == 1
    assert "could not read secrets: TimeoutError" in proc.stderr
