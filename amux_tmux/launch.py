"""The pane's program, and the hand-off that feeds it.

tmux runs this fixed command as every pane's process (:func:`pane_command`), so tmux
never parses or stores a string the user typed. The agent's argv, working directory and
whole environment travel as one *launch spec* through a 0600 FIFO that ``start`` writes
once; the launcher reads it, removes the FIFO, changes directory and ``exec``s the agent
(so the pane's pid is the agent's pid). Whether the ``exec`` worked comes back through a
second FIFO that the launcher holds open with close-on-exec: end-of-file with no data
means the agent runs; a line ``CODE MESSAGE`` means it could not be started, and why.

The launcher runs before every agent, on ``start``'s critical path, so it starts
without ``site`` and imports only C modules of the standard library: no json (the spec
is NUL-separated words, as ``execve`` takes them), no signal (waits are bounded with
``poll``), no typing or pathlib.
"""

from __future__ import annotations

import errno
import os
import select
import sys
import time

#: mypy reads this name as typing's; the launcher does not import typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

FIFO_WAIT_SECONDS = 15
MAX_SPEC_BYTES = 16 * 1024 * 1024
EXIT_NOT_FOUND = 127
EXIT_CANNOT_EXEC = 126
EXIT_BAD_SPEC = 125
#: The spec's first word: its format and version.
SPEC_MAGIC = "amux-launch-2"
#: What tmux sets in a pane's environment, which the agent must see as tmux set it.
PANE_VARIABLES = ("TMUX", "TMUX_PANE", "TERM", "TERM_PROGRAM", "TERM_PROGRAM_VERSION")


#: The launcher's bootstrap: ``site`` (most of an interpreter's start) is skipped, so the
#: package is found through the directory given as the first argument.
_BOOT = (
    "import sys; sys.path.append(sys.argv[1]); "
    "from amux_tmux.launch import main; sys.exit(main(sys.argv[2:]))"
)


def pane_command(spec_path: str) -> list[str]:
    """Return the fixed command tmux runs as a pane's process: this module's :func:`main`.

    >>> pane_command("/r/.amux/run/x.spec.fifo")[1:4]
    ['-I', '-S', '-c']
    """
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return [sys.executable, "-I", "-S", "-c", _BOOT, here, spec_path]


class LaunchFailed(Exception):
    """The launcher could not start the agent; ``code`` is the pane's exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# --- the pane side ---------------------------------------------------------------------


class Spec:
    """What the launcher needs to start an agent (plain data)."""

    __slots__ = ("argv", "cwd", "env", "exe", "status")

    def __init__(
        self, argv: list[str], exe: str, cwd: str, env: dict[str, str], status: str | None
    ) -> None:
        self.argv, self.exe, self.cwd, self.env, self.status = argv, exe, cwd, env, status


def encode_spec(
    argv: Sequence[str], exe: str, cwd: str, env: Mapping[str, str], status: str | None
) -> bytes:
    """Return the spec as NUL-terminated words: magic, exe, cwd, status, argc, argv, env.

    Raises ValueError for a NUL in any word or an ``=`` in a variable's name, which
    ``execve`` could not pass on either.

    >>> encode_spec(["a", "b c"], "/bin/a", "/", {"K": "v=1"}, None).split(b"\\0")
    [b'amux-launch-2', b'/bin/a', b'/', b'', b'2', b'a', b'b c', b'K=v=1', b'']
    """
    for key in env:
        if not key or "=" in key:
            raise ValueError(f"bad environment variable name {key[:40]!r}")
    words = [SPEC_MAGIC, exe, cwd, status or "", str(len(argv)), *argv]
    words += [f"{key}={value}" for key, value in env.items()]
    if any("\0" in word for word in words):
        raise ValueError("a NUL byte cannot be passed to a program")
    return b"".join(word.encode("utf-8", "surrogateescape") + b"\0" for word in words)


def decode_spec(data: bytes) -> Spec:
    """Return the spec :func:`encode_spec` wrote; ValueError if it is anything else.

    >>> spec = decode_spec(encode_spec(["a"], "/bin/a", "/", {"K": "v"}, "/s"))
    >>> spec.argv, spec.exe, spec.cwd, spec.env, spec.status
    (['a'], '/bin/a', '/', {'K': 'v'}, '/s')
    """
    if not data.endswith(b"\0"):
        raise ValueError("launch spec is cut short")
    words = [word.decode("utf-8", "surrogateescape") for word in data[:-1].split(b"\0")]
    if len(words) < 6 or words[0] != SPEC_MAGIC:
        raise ValueError(f"launch spec is not {SPEC_MAGIC}")
    exe, cwd, status, count = words[1:5]
    if not (count.isascii() and count.isdigit()) or not 0 < int(count) <= len(words) - 5:
        raise ValueError("launch spec argv is not a list of strings")
    argc = int(count)
    if not exe or not cwd:
        raise ValueError("launch spec has no program or no directory")
    env = {}
    for item in words[5 + argc :]:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError("launch spec env is not a map of strings")
        env[key] = value
    return Spec(words[5 : 5 + argc], exe, cwd, env, status or None)


def read_spec(path: str) -> Spec:
    """Read and check the launch spec from the FIFO at ``path``, then remove the FIFO.

    Opened without blocking and waited for with ``poll`` (Linux reports no hang-up to a
    FIFO's reader before a writer has come): a writer that died before opening its end,
    or one that never finishes, costs at most :data:`FIFO_WAIT_SECONDS`.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + FIFO_WAIT_SECONDS
        chunks: list[bytes] = []
        size = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                if chunks:
                    raise TimeoutError("the launch spec did not arrive whole in time")
                raise TimeoutError("nobody wrote the launch spec in time")
            if not poller.poll(max(1, int(left * 1000))):
                continue
            if not chunks:
                try:  # noqa: SIM105 - contextlib is not imported here
                    os.unlink(path)  # the writer is in: no one else may open it
                except OSError:
                    pass
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                return decode_spec(b"".join(chunks))
            size += len(chunk)
            if size > MAX_SPEC_BYTES:
                raise ValueError("launch spec is too large")
            chunks.append(chunk)
    finally:
        os.close(fd)


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
        line = f"{code} {message}".replace("\n", " ") + "\n"
        try:  # noqa: SIM105 - contextlib is not imported here
            os.write(status_fd, line.encode("utf-8", "replace"))
        except OSError:
            pass
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
    if spec.status is not None:
        try:
            # start holds the read end; if it is gone (start was killed), ENXIO.
            status_fd = os.open(spec.status, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as err:
            return _report(None, f"could not open the status FIFO: {err}", EXIT_BAD_SPEC)
    env = agent_environment(spec.env, os.environ)
    env["PWD"] = spec.cwd  # as a shell would set it: programs trust it over getcwd()
    try:
        os.chdir(spec.cwd)
    except OSError as err:
        return _report(status_fd, f"cannot enter {spec.cwd}: {err.strerror}", EXIT_CANNOT_EXEC)
    try:
        os.execve(spec.exe, spec.argv, env)
    except FileNotFoundError:
        if os.path.exists(spec.exe):  # the program is there: its #! interpreter is not
            message = f"cannot run {spec.argv[0]}: its interpreter (#!) was not found"
            return _report(status_fd, message, EXIT_NOT_FOUND)
        return _report(status_fd, f"command not found: {spec.argv[0]}", EXIT_NOT_FOUND)
    except OSError as err:
        return _report(status_fd, f"cannot run {spec.argv[0]}: {err.strerror}", EXIT_CANNOT_EXEC)
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
        try:
            entries = os.scandir(directory)
        except FileNotFoundError:
            return found
        with entries:
            for entry in entries:
                for suffix in (".spec.fifo", ".status.fifo"):
                    if entry.name.endswith(suffix):
                        stem = entry.name[: -len(suffix)]
                        found.setdefault(stem, []).append(directory / entry.name)
        return found

    def close(self) -> None:
        """Remove both FIFOs (idempotent)."""
        import contextlib

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
        try:
            payload = encode_spec(argv, exe, cwd, env, str(self.status_path))
        except ValueError as err:
            raise LaunchFailed(str(err), EXIT_BAD_SPEC) from None
        deadline = time.monotonic() + timeout
        fd = self._open_writer(deadline)
        try:
            self._write_all(fd, payload, deadline)
        finally:
            os.close(fd)
        self._await_exec(deadline)

    @staticmethod
    def _write_all(fd: int, payload: bytes, deadline: float) -> None:
        # Past the pipe's buffer, a launcher that stopped reading would block us forever.
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        view = memoryview(payload)
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LaunchFailed("the launcher stopped reading its spec", 1)
            if not poller.poll(max(1, int(left * 1000))):
                continue
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:
                continue
            except BrokenPipeError:
                raise LaunchFailed("the launcher stopped reading its spec", 1) from None

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
            delay = min(delay * 2, 0.002)  # a fresh interpreter: ~10 ms, checked often

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
        code, _, message = data.decode("utf-8", "replace").partition("\n")[0].partition(" ")
        if not code.isdigit() or not message:
            raise LaunchFailed("the launcher failed", 1)
        raise LaunchFailed(message, int(code))


if __name__ == "__main__":
    sys.exit(main())
