"""The pane's program, and the hand-off that feeds it: ``python -m amux_tmux.launch FIFO``.

tmux runs this fixed command as every pane's process, so tmux never parses or stores a
string the user typed. The agent's argv, working directory and whole environment travel
as one JSON *launch spec* through a 0600 FIFO that ``start`` writes once; the launcher
reads it, removes the FIFO, changes directory and ``exec``s the agent (so the pane's
pid is the agent's pid). Whether the ``exec`` worked comes back through a second FIFO
that the launcher holds open with close-on-exec: end-of-file with no data means the
agent runs; a JSON line means it could not be started, and why.

This module imports only the standard library: the launcher runs before every agent.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

FIFO_WAIT_SECONDS = 15
MAX_SPEC_BYTES = 16 * 1024 * 1024
EXIT_NOT_FOUND = 127
EXIT_CANNOT_EXEC = 126
EXIT_BAD_SPEC = 125
SPEC_VERSION = 1
#: What tmux sets in a pane's environment, which the agent must see as tmux set it.
PANE_VARIABLES = ("TMUX", "TMUX_PANE", "TERM", "TERM_PROGRAM", "TERM_PROGRAM_VERSION")


class LaunchFailed(Exception):
    """The launcher could not start the agent; ``code`` is the pane's exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# --- the pane side ---------------------------------------------------------------------


def _give_up(signum: int, frame: object) -> None:
    raise TimeoutError("nobody opened the other end of the launch FIFO")


def _open_bounded(path: str, flags: int) -> int:
    # A writer (or reader) that died before opening its end would block us forever.
    signal.signal(signal.SIGALRM, _give_up)
    signal.alarm(FIFO_WAIT_SECONDS)
    try:
        return os.open(path, flags | os.O_CLOEXEC)
    finally:
        signal.alarm(0)


def read_spec(path: str) -> dict[str, object]:
    """Read and check the launch spec from the FIFO at ``path``, then remove the FIFO."""
    fd = _open_bounded(path, os.O_RDONLY)
    with contextlib.suppress(OSError):
        os.unlink(path)  # start removes it too
    chunks: list[bytes] = []
    size = 0
    with os.fdopen(fd, "rb") as pipe:
        while chunk := pipe.read(65536):
            size += len(chunk)
            if size > MAX_SPEC_BYTES:
                raise ValueError("launch spec is too large")
            chunks.append(chunk)
    spec = json.loads(b"".join(chunks))
    if not isinstance(spec, dict) or spec.get("v") != SPEC_VERSION:
        raise ValueError("launch spec is not version 1")
    argv, env = spec.get("argv"), spec.get("env")
    if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
        raise ValueError("launch spec argv is not a list of strings")
    if not (isinstance(env, dict) and all(isinstance(v, str) for v in env.values())):
        raise ValueError("launch spec env is not a map of strings")
    for key in ("exe", "cwd"):
        if not isinstance(spec.get(key), str):
            raise ValueError(f"launch spec {key} is not a string")
    if spec.get("status") is not None and not isinstance(spec["status"], str):
        raise ValueError("launch spec status is not a string")
    return spec


def agent_environment(spec_env: Mapping[str, str], pane_env: Mapping[str, str]) -> dict[str, str]:
    """Return the caller's environment as the agent sees it inside its pane.

    ``start`` already left out the caller's own ``TMUX*`` variables; what the spec still
    holds under such a name was asked for with ``-e`` and is kept, except the variables
    tmux sets for the pane, which are tmux's (``TMUX`` names the server the agent is in).

    >>> agent_environment({"A": "1", "TMUX": "old", "TERM": "xterm", "TMUX_X": "kept"},
    ...                   {"TMUX": "/s,1,0", "TERM": "tmux-256color", "X": "2"})
    {'A': '1', 'TERM': 'tmux-256color', 'TMUX_X': 'kept', 'TMUX': '/s,1,0'}
    """
    env = {k: v for k, v in spec_env.items() if k not in ("TMUX", "TMUX_PANE")}
    env.update({k: pane_env[k] for k in PANE_VARIABLES if k in pane_env})
    return env


def _report(status_fd: int | None, message: str, code: int) -> int:
    print(f"amux launch: {message}", file=sys.stderr, flush=True)
    if status_fd is not None:
        with contextlib.suppress(OSError):
            os.write(status_fd, json.dumps({"error": message, "exit": code}).encode() + b"\n")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Read the launch spec, then replace this process with the agent."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m amux_tmux.launch FIFO", file=sys.stderr)
        return 2
    try:
        spec = read_spec(args[0])
    except Exception as err:  # any failure: do not start the agent
        return _report(None, f"could not read the launch spec: {err}", EXIT_BAD_SPEC)
    status_fd = None
    status = spec.get("status")
    if isinstance(status, str):
        try:
            status_fd = _open_bounded(status, os.O_WRONLY)
        except Exception as err:
            return _report(None, f"could not open the status FIFO: {err}", EXIT_BAD_SPEC)
    argv_: list[str] = spec["argv"]  # type: ignore[assignment]
    env = agent_environment(spec["env"], os.environ)  # type: ignore[arg-type]
    try:
        os.chdir(spec["cwd"])  # type: ignore[arg-type]
    except OSError as err:
        return _report(status_fd, f"cannot enter {spec['cwd']}: {err.strerror}", EXIT_CANNOT_EXEC)
    try:
        os.execve(spec["exe"], argv_, env)  # type: ignore[arg-type]
    except FileNotFoundError:
        return _report(status_fd, f"command not found: {argv_[0]}", EXIT_NOT_FOUND)
    except OSError as err:
        return _report(status_fd, f"cannot run {argv_[0]}: {err.strerror}", EXIT_CANNOT_EXEC)
    return 0  # pragma: no cover - execve does not return


# --- the start side --------------------------------------------------------------------


class Handoff:
    """The writer's end: two 0600 FIFOs in a private directory, used once.

    Parameters
    ----------
    directory : Path
        A 0700 directory of the store (``.amux/run``).
    stem : str
        A unique file name stem (the session id plus randomness).
    """

    def __init__(self, directory: Path, stem: str) -> None:
        self.spec_path = directory / f"{stem}.spec.fifo"
        self.status_path = directory / f"{stem}.status.fifo"
        os.mkfifo(self.spec_path, 0o600)
        try:
            os.mkfifo(self.status_path, 0o600)
            # Opened now, before tmux runs the launcher: the launcher's open for
            # writing then never waits, and we see its end-of-file after exec.
            self._status_fd = os.open(self.status_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def leftovers(directory: Path) -> dict[str, list[Path]]:
        """Return the FIFOs in ``directory`` by stem: those of starts that ended are
        left behind only by a writer that was killed (``kill -9``)."""
        found: dict[str, list[Path]] = {}
        with contextlib.suppress(FileNotFoundError), os.scandir(directory) as entries:
            for entry in entries:
                for suffix in (".spec.fifo", ".status.fifo"):
                    if entry.name.endswith(suffix):
                        stem = entry.name[: -len(suffix)]
                        found.setdefault(stem, []).append(Path(entry.path))
        return found

    def close(self) -> None:
        """Remove both FIFOs (idempotent)."""
        fd = getattr(self, "_status_fd", -1)
        if fd >= 0:
            os.close(fd)
            self._status_fd = -1
        for path in (self.spec_path, self.status_path):
            with contextlib.suppress(OSError):
                path.unlink()

    def __enter__(self) -> Handoff:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def send(
        self,
        argv: Sequence[str],
        exe: str,
        cwd: str,
        env: Mapping[str, str],
        timeout: float,
    ) -> None:
        """Write the launch spec once the launcher opens the FIFO, then wait for ``exec``.

        Raises
        ------
        LaunchFailed
            The launcher did not come, or could not start the agent (with its exit code).
        """
        payload = json.dumps(
            {
                "v": SPEC_VERSION,
                "argv": list(argv),
                "exe": exe,
                "cwd": cwd,
                "env": dict(env),
                "status": str(self.status_path),
            }
        ).encode()
        deadline = time.monotonic() + timeout
        fd = self._open_writer(deadline)
        try:
            os.set_blocking(fd, True)
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        self._await_exec(deadline)

    def _open_writer(self, deadline: float) -> int:
        delay = 0.0005
        while True:
            try:
                return os.open(self.spec_path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as err:
                # ENXIO: no reader yet. The launcher is a fresh interpreter; give it time.
                if err.errno != errno.ENXIO:
                    raise LaunchFailed(
                        f"cannot hand over to the launcher: {err.strerror}", 1
                    ) from None
            if time.monotonic() > deadline:
                raise LaunchFailed("the launcher did not start in time", 1)
            time.sleep(delay)
            delay = min(delay * 2, 0.02)

    def _await_exec(self, deadline: float) -> None:
        data = b""
        poller = select.poll()
        poller.register(self._status_fd, select.POLLIN | select.POLLHUP)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LaunchFailed("the launcher did not report in time", 1)
            if not poller.poll(left * 1000):
                continue
            chunk = os.read(self._status_fd, 65536)
            if not chunk:
                break  # the launcher's end closed: on exec, or on exit
            data += chunk
        if not data:
            return
        try:
            report = json.loads(data.splitlines()[0])
            raise LaunchFailed(str(report["error"]), int(report["exit"]))
        except (ValueError, KeyError, TypeError):
            raise LaunchFailed("the launcher failed", 1) from None


if __name__ == "__main__":
    sys.exit(main())
