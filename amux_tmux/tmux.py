"""The one module that talks to tmux: a dedicated server, exact targets, bounded calls.

Every call goes to one server named by socket path (``-S``), so cron, other shells and
other ``TMUX_TMPDIR`` values reach the same server; the user's default server is never
addressed. Targets are always exact (``$id``, ``%pane``, ``=name``): tmux resolves a
bare name by prefix, and ``kill-session -t amux-1`` would kill ``amux-12``.

Every tmux process runs with a timeout, because tmux hangs rather than fails when it is
out of file descriptors. That is also why this adapter runs tmux itself instead of
through libtmux's ``Server.cmd``: libtmux cannot bound a call's time, and importing it
costs more (~80 ms) than a whole ``reconcile`` is allowed.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence

from amux_tmux import exc
from amux_tmux.model import LivePane
from amux_tmux.secrets import scrub_environ

MIN_VERSION = (3, 2)
DEFAULT_TIMEOUT = 5.0
DEFAULT_SOCKET = "amux"
OWNER_OPTION = "@amux_id"
ORPHAN_OPTION = "@amux_orphan"

_SEP = "\x1f"  # unit separator: cannot appear in session names tmux accepts from us
_LIVE_FIELDS = (
    "session_id",
    "session_name",
    "session_created",
    OWNER_OPTION,
    ORPHAN_OPTION,
    "pane_id",
    "pane_index",
    "pane_pid",
    "pane_dead",
    "pane_dead_status",
    "pane_dead_signal",
    "pane_dead_time",
)
_LIVE_FORMAT = _SEP.join(f"#{{{field}}}" for field in _LIVE_FIELDS)
_SPAWN_FORMAT = _SEP.join(
    ("#{session_id}", "#{session_name}", "#{pane_id}", "#{pane_pid}", "#{socket_path}")
)
_NO_SERVER = re.compile(
    r"no server running on |error connecting to .* \(No such file or directory\)"
)
_VERSION = re.compile(r"(\d+)\.(\d+)")
_version_checked: set[str] = set()


@dataclasses.dataclass(frozen=True, slots=True)
class Spawned:
    """What tmux reported about a session it just created."""

    session_id: str
    session_name: str
    pane_id: str
    pane_pid: int
    socket_path: str


def socket_path_for(socket: str, environ: Mapping[str, str] | None = None) -> str:
    """Return the absolute socket path tmux uses for a socket NAME or PATH.

    A value containing ``/`` is taken as a path; a bare name lives where tmux puts
    ``-L`` sockets: ``$TMUX_TMPDIR/tmux-UID/NAME`` (``/tmp`` when unset).
    """
    if "/" in socket:
        return os.path.abspath(socket)
    env = os.environ if environ is None else environ
    base = env.get("TMUX_TMPDIR") or "/tmp"
    return os.path.join(os.path.realpath(base), f"tmux-{os.geteuid()}", socket)


def exact_session(name: str) -> str:
    """Return the exact-match target for a session name (``=name``)."""
    return f"={name}"


class TmuxBackend:
    """A tmux server on one socket.

    Parameters
    ----------
    socket : str
        A socket name (``amux``) or an absolute path; a recorded path is used as is.
    tmux_bin : str, optional
        The tmux binary; default: ``tmux`` on ``PATH``.
    timeout : float
        Seconds any single tmux call may take before :class:`TmuxTimeout`.
    """

    def __init__(
        self,
        socket: str = DEFAULT_SOCKET,
        tmux_bin: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.socket_path = socket_path_for(socket)
        self._tmux_bin = tmux_bin
        self.timeout = timeout
        self.calls = 0

    # --- plumbing ------------------------------------------------------------------

    @property
    def tmux_bin(self) -> str:
        """The tmux binary, resolved on first use; :class:`TmuxNotFound` if absent."""
        if self._tmux_bin is None:
            found = shutil.which("tmux")
            if found is None:
                raise exc.TmuxNotFound
            self._tmux_bin = found
        return self._tmux_bin

    def argv(self, *args: str) -> list[str]:
        """Return the full command line for a tmux command on our socket."""
        return [self.tmux_bin, "-S", self.socket_path, *args]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run one tmux command with a timeout; return it whatever its exit status.

        The child gets our environment minus secrets: a tmux server keeps the
        environment of the client that started it, visible to ``show-environment``.
        """
        argv = self.argv(*args)
        self.calls += 1
        try:
            return subprocess.run(
                argv,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=self.timeout,
                env=scrub_environ(os.environ),
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except FileNotFoundError:
            raise exc.TmuxNotFound from None
        except subprocess.TimeoutExpired:
            raise exc.TmuxTimeout(args[0], self.timeout) from None
        except OSError as err:
            raise exc.TmuxQueryFailed(args[0], err.strerror or str(err)) from None

    def _must(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.run(*args)
        if result.returncode != 0:
            raise exc.TmuxCommandFailed(args[0], _first_line(result.stderr) or "failed")
        return result

    def check_version(self) -> None:
        """Check, once per binary and process, that tmux is at least :data:`MIN_VERSION`."""
        binary = self.tmux_bin
        if binary in _version_checked:
            return
        try:
            out = subprocess.run(
                [binary, "-V"], capture_output=True, text=True, timeout=self.timeout, check=False
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired) as err:
            raise exc.TmuxQueryFailed("-V", str(err)) from None
        match = _VERSION.search(out)
        # Builds from git say "tmux next-3.5" or "tmux master"; assume they are recent.
        if match and (int(match.group(1)), int(match.group(2))) < MIN_VERSION:
            raise exc.TmuxVersionTooOld(out, ".".join(map(str, MIN_VERSION)))
        _version_checked.add(binary)

    # --- queries -------------------------------------------------------------------

    def list_live(self) -> dict[str, LivePane]:
        """Return every session on our server by name, with its first pane, in ONE call.

        Raises
        ------
        TmuxUnavailable
            When tmux answers with anything but "no server running": an unreachable
            server is not an empty one, and callers must not act as if it were.
        """
        result = self.run("list-panes", "-a", "-F", _LIVE_FORMAT)
        if result.returncode != 0:
            if _NO_SERVER.search(result.stderr):
                return {}
            raise exc.TmuxQueryFailed(
                "list-panes", _first_line(result.stderr) or f"exit {result.returncode}"
            )
        live: dict[str, LivePane] = {}
        for line in result.stdout.splitlines():
            pane = _parse_live(line)
            if pane is None:
                raise exc.TmuxQueryFailed("list-panes", f"unexpected output {line[:80]!r}")
            live.setdefault(pane.session_name, pane)  # a user may split; the first is ours
        return live

    # --- changes -------------------------------------------------------------------

    def new_session(
        self,
        name: str,
        owner_id: str,
        command: Sequence[str],
        cwd: str,
        environment: Mapping[str, str],
    ) -> Spawned:
        """Create a detached session running ``command`` as its pane's own process.

        ``remain-on-exit`` and the ownership tag are set in the same tmux invocation,
        so even an agent that exits at once leaves a dead pane with its exit status.
        ``environment`` must hold non-secret values only: ``-e`` is on tmux's argv.
        """
        if len(command) < 2:
            raise exc.UsageError("internal: the pane command must be an argv of 2+ words")
        env_args: list[str] = []
        for key, value in environment.items():
            env_args += ["-e", f"{key}={value}"]
        window = f"{exact_session(name)}:"
        # With -S tmux does not create the socket's directory (as it does for -L), and
        # it reports that failure with exit status 0.
        socket_dir = os.path.dirname(self.socket_path)
        if not os.path.isdir(socket_dir):
            os.makedirs(socket_dir, mode=0o700, exist_ok=True)
        result = self._must(
            "new-session", "-d", "-s", name, "-c", cwd, "-x", "200", "-y", "50",
            "-P", "-F", _SPAWN_FORMAT, *env_args, "--", *command,
            ";", "set-option", "-w", "-t", window, "remain-on-exit", "on",
            ";", "set-option", "-t", window, OWNER_OPTION, owner_id,
        )  # fmt: skip
        fields = result.stdout.splitlines()[0].split(_SEP) if result.stdout else []
        if len(fields) != 5 or not fields[3].isdigit():
            detail = _first_line(result.stderr) or f"unexpected output {result.stdout[:80]!r}"
            raise exc.TmuxCommandFailed("new-session", detail)
        return Spawned(fields[0], fields[1], fields[2], int(fields[3]), fields[4])

    def kill_session(self, target: str) -> bool:
        """Kill a session by exact target (``$id`` or ``=name``); False if it was gone."""
        _require_exact(target)
        result = self.run("kill-session", "-t", target)
        if result.returncode == 0:
            return True
        if _NO_SERVER.search(result.stderr) or "can't find session" in result.stderr:
            return False
        raise exc.TmuxCommandFailed("kill-session", _first_line(result.stderr))

    def tag_orphan(self, target: str) -> None:
        """Mark an amux-owned session that has no record (``@amux_orphan 1``)."""
        _require_exact(target)
        self._must("set-option", "-t", _as_pane_target(target), ORPHAN_OPTION, "1")

    def capture(self, pane_id: str, lines: int | None = None) -> str:
        """Return a pane's text: the last ``lines`` lines, or all of its history."""
        _require_exact(pane_id)
        start = "-" if lines is None else f"-{lines}"
        text = self._must("capture-pane", "-p", "-J", "-t", pane_id, "-S", start).stdout
        out = text.rstrip("\n").split("\n")
        if lines is not None:
            out = out[-lines:] if lines > 0 else []
        return "\n".join(out) + ("\n" if out and out != [""] else "")

    def send_text(self, pane_id: str, text: str, enter: bool = True) -> None:
        """Type ``text`` literally into a pane, then Enter unless told not to."""
        _require_exact(pane_id)
        if text:
            self._must("send-keys", "-t", pane_id, "-l", "--", text)
        if enter:
            self._must("send-keys", "-t", pane_id, "Enter")

    def switch_client(self, target: str) -> None:
        """Switch the calling client (we run inside this server) to ``target``."""
        _require_exact(target)
        self._must("switch-client", "-t", target)

    def attach_argv(self, target: str) -> list[str]:
        """Return the command line that attaches a terminal to ``target``."""
        _require_exact(target)
        return self.argv("attach-session", "-t", target)


def _as_pane_target(target: str) -> str:
    # Window/pane-typed targets read "=name" as a window name; "=name:" means the session.
    return f"{target}:" if target.startswith("=") and not target.endswith(":") else target


def _require_exact(target: str) -> None:
    if not target or target[0] not in "=$%@":
        raise ValueError(f"tmux target {target!r} is not exact")


def _parse_live(line: str) -> LivePane | None:
    parts = line.split(_SEP)
    if len(parts) != len(_LIVE_FIELDS):
        return None
    sid, name, created, owner, orphan, pane_id, _index, pid, dead, status, signal, died = parts
    try:
        return LivePane(
            session_id=sid,
            session_name=name,
            session_created=int(created or 0),
            owner_id=owner or None,
            orphan_tag=orphan == "1",
            pane_id=pane_id,
            pane_pid=int(pid) if pid.isdigit() else None,
            pane_dead=dead == "1",
            pane_dead_status=int(status) if status.lstrip("-").isdigit() else None,
            pane_dead_signal=int(signal) if signal.isdigit() else None,
            pane_dead_time=int(died) if died.isdigit() else None,
        )
    except ValueError:
        return None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def socket_of_tmux_env(value: str | None) -> str | None:
    """Return the socket path from a ``$TMUX`` value (``path,pid,session``)."""
    if not value:
        return None
    return value.split(",", 1)[0] or None
