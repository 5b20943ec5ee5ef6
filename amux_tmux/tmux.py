"""The one module that talks to tmux: libtmux on one socket path, every call bounded.

Every call goes to one server named by socket path (``-S``), so cron, other shells and
other ``TMUX_TMPDIR`` values reach the same server; the user's default server is never
addressed. Targets are always exact (``$id``, ``%pane``, ``=name``): tmux resolves a
bare name by prefix, and ``kill-session -t amux-1`` would kill ``amux-12``.

:class:`TmuxBackend` wraps :class:`libtmux.Server` with its ``cmd`` overridden: libtmux
0.62 gives a tmux process no time limit (libtmux issue #732), and tmux hangs rather than
fails when it is out of file descriptors, so every process we start has a timeout, a
minimal environment and no stdin. Per-session verbs use libtmux's Session and Pane
objects, built from the ids of our own listing (``server.sessions`` is not used: it
calls tmux around ``cmd`` and answers ``[]`` on any error). Many changes at once go to
one control-mode client (:meth:`TmuxBackend.batch`). libtmux is imported on first use,
never by ``ls``.

No string a user typed is ever parsed by tmux. The pane command is fixed (see
:mod:`amux_tmux.launch`); arguments that still reach tmux have a trailing ``;`` escaped
(tmux splits its argv into commands there) and, where tmux expands formats, ``#``
doubled. The shell strings tmux runs (the pane-died hook, the log pipe) hold only the
Python interpreter's path, quoted, ``#{pane_id}``, and words of letters, digits and
``-`` (the log pipe's root, hex-encoded).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import re
import select
import shlex
import shutil
import stat
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from amux_tmux import exc
from amux_tmux.model import LivePane

if TYPE_CHECKING:
    import libtmux
    from libtmux.common import tmux_cmd

DEFAULT_TIMEOUT = 5.0
DEFAULT_SOCKET = "amux"
OWNER_OPTION = "@amux_id"
STORE_OPTION = "@amux_store"
ROOT_OPTION = "@amux_root"
ORPHAN_OPTION = "@amux_orphan"
#: What agents ask of the server they run in (Claude Code warns when focus-events is off).
SERVER_OPTIONS = (
    ("-s", "focus-events", "on"),
    ("-s", "extended-keys", "on"),
    ("-g", "history-limit", "50000"),
)
#: The only variables a tmux client gets: a server it starts keeps its client's
#: environment for life (``show-environment -g``), and the agent's comes from the spec.
CLIENT_VARIABLES = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TZ", "TMUX_TMPDIR", "TERM"}
)

_SEP = "\x1f"  # unit separator: cannot appear in the values our sessions carry
_LIVE_FIELDS = (
    "session_id",
    "session_name",
    "session_created",
    OWNER_OPTION,
    STORE_OPTION,
    ORPHAN_OPTION,
    "pane_id",
    "pane_pid",
    "pane_dead",
    "pane_dead_status",
    "pane_dead_signal",
    "pane_dead_time",
    "window_activity",
    "pid",
)
#: Tags anyone may set on any session, shown with all but id characters replaced, so
#: a foreign session's newline or separator cannot break the listing of every other.
_TAG_FIELDS = frozenset({OWNER_OPTION, STORE_OPTION, ORPHAN_OPTION})
_LIVE_FORMAT = _SEP.join(
    f"#{{s/[^a-z0-9-]/?/:{field}}}" if field in _TAG_FIELDS else f"#{{{field}}}"
    for field in _LIVE_FIELDS
)
_SPAWN_FORMAT = _SEP.join(("#{session_id}", "#{pane_id}", "#{pane_pid}", "#{socket_path}"))
_NO_SERVER = re.compile(
    r"no server running on |error connecting to .* \(No such file or directory\)"
)
#: tmux could not talk to its server at all: the server is unavailable (exit 5), which
#: says nothing about the command.
_UNREACHABLE = re.compile(
    r"^(?:no server running on |error connecting to |lost server|server exited unexpectedly)"
)
_SERVER_LEAVING = re.compile(r"^(?:server exited unexpectedly|lost server)")
_TOKEN = re.compile(r"[A-Za-z0-9_@%$=:.,/+-]+")
_WORD = re.compile(r"[A-Za-z0-9-]+")
#: tmux binaries whose version passed :meth:`TmuxBackend.check_version` in this process.
_VERSION_OK: set[str] = set()


# --- quoting -------------------------------------------------------------------------


def escape_arg(text: str) -> str:
    """Return ``text`` as one tmux argv element that tmux will not split at a ``;``.

    tmux ends a command at an argument ending in ``;``, and reads ``\\;`` there as a
    literal ``;``.

    >>> escape_arg("kill-server;")
    'kill-server\\\\;'
    >>> escape_arg("a;b")
    'a;b'
    """
    return text[:-1] + "\\;" if text.endswith(";") else text


def escape_format(text: str) -> str:
    """Return ``text`` for an argument tmux expands formats in (``#`` doubled).

    >>> escape_format("a#(touch x)")
    'a##(touch x)'
    """
    return escape_arg(text.replace("#", "##"))


def fixed_program(
    module: str,
    pane_format: str | None = "pane_id",
    quiet: bool = False,
    words: Sequence[str] = (),
) -> str:
    """Return the shell command tmux runs for ``amux_tmux.<module>`` on one pane.

    Only the interpreter's path (shell-quoted, ``#`` doubled for format expansion), the
    pane's ``#{pane_id}`` (or another pane format) and ``words`` made of letters, digits
    and ``-`` (inert to both tmux and ``sh``) are in it.

    >>> fixed_program("x", None, words=["ab-1"]).split()[-2:]
    ['amux_tmux.x', 'ab-1']
    """
    for word in words:
        if _WORD.fullmatch(word) is None:
            raise ValueError(f"not an inert word: {word!r}")
    python = shlex.quote(sys.executable).replace("#", "##")
    pane = [f"#{{{pane_format}}}"] if pane_format else []
    hush = " >/dev/null 2>&1" if quiet else ""
    return " ".join(["exec", python, "-I", "-m", f"amux_tmux.{module}", *pane, *words]) + hush


def log_pipe_program(owner_id: str, root: str) -> str:
    """Return the ``pipe-pane`` command: the log's place travels hex-encoded.

    The pipe's program must know where the log goes even when the agent has already
    exited (a process's environment goes with it), and tmux gives it no ``$TMUX`` to
    ask; a path spliced in as text would be code, its hex digits are not.
    """
    hexroot = root.encode("utf-8", "surrogateescape").hex()
    return fixed_program("logpipe", None, words=[owner_id, hexroot])


def _tmux_quote(text: str) -> str:
    """Quote ``text`` as one word of a tmux command string (a hook's command)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def _control_line(args: Sequence[str]) -> str:
    """Return one control-mode command line; only our own ids and options go here."""
    words = []
    for arg in args:
        if _TOKEN.fullmatch(arg):
            words.append(arg)
        elif "'" not in arg and "\n" not in arg:
            words.append(f"'{arg}'")
        else:
            raise ValueError(f"not a control-mode word: {arg!r}")
    return " ".join(words)


# --- plain data ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Live:
    """One listing of a server: its sessions by name, each with its first pane."""

    panes: dict[str, LivePane]
    #: tmux said no server listens there (which is not proof that none runs, trap 16).
    no_server: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Spawned:
    """What tmux reported about a session it just created."""

    session_id: str
    session_name: str
    pane_id: str
    pane_pid: int
    socket_path: str


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """How one command of a :meth:`TmuxBackend.batch` went."""

    ok: bool
    output: tuple[str, ...] = ()
    error: str = ""


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


def socket_of_tmux_env(value: str | None) -> str | None:
    """Return the socket path from a ``$TMUX`` value (``path,pid,session``)."""
    if not value:
        return None
    return value.rsplit(",", 2)[0] or None


def exact_session(name: str) -> str:
    """Return the exact-match target for a session name (``=name``)."""
    return f"={name}"


def client_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """Return the environment a tmux client process gets (see :data:`CLIENT_VARIABLES`)."""
    return {k: v for k, v in environ.items() if k in CLIENT_VARIABLES or k.startswith("LC_")}


# --- libtmux, bounded ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class TmuxResult:
    """What one tmux process returned: the fields of libtmux's ``tmux_cmd``."""

    cmd: list[str]
    returncode: int
    #: The output as tmux wrote it (option values are bytes, not always UTF-8).
    raw: bytes
    text: str
    stdout: list[str]
    stderr: list[str]


def run_tmux(
    args: Sequence[str],
    *,
    tmux_bin: str,
    timeout: float,
    stdin: bytes | None = None,
    name: str = "",
) -> TmuxResult:
    """Run one tmux process, bounded: a time limit, the client's scrubbed environment,
    and stdin closed unless ``stdin`` is given.

    libtmux's ``Server.cmd`` runs through here; so does ``start``'s one command chain,
    which needs none of libtmux's objects and so does not pay for importing it.
    """
    import subprocess  # not needed by commands that never run tmux (mark, ls)

    argv = [tmux_bin, *args]
    try:
        proc = subprocess.run(
            argv,
            input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            capture_output=True,
            timeout=timeout,
            env=client_environ(os.environ),
            check=False,
        )
    except FileNotFoundError:
        raise exc.TmuxNotFound from None
    except subprocess.TimeoutExpired:
        raise exc.TmuxTimeout(name, timeout) from None
    except OSError as err:
        raise exc.TmuxQueryFailed(name, err.strerror or str(err)) from None
    text = proc.stdout.decode("utf-8", "replace")
    lines = text.split("\n")
    while lines and lines[-1] == "":
        lines.pop()
    errors = [line for line in proc.stderr.decode("utf-8", "replace").split("\n") if line]
    return TmuxResult(argv, proc.returncode, proc.stdout, text, lines, errors)


@functools.cache
def _bounded_server_class() -> type[libtmux.Server]:
    """Build (once, on first use) libtmux's Server with every tmux process bounded."""
    import libtmux
    from libtmux.common import tmux_cmd

    class BoundedCmd(tmux_cmd):
        """libtmux's result type, produced by :func:`run_tmux`."""

        def __init__(
            self,
            *args: str,
            tmux_bin: str,
            timeout: float,
            stdin: bytes | None = None,
            name: str = "",
        ) -> None:
            result = run_tmux(args, tmux_bin=tmux_bin, timeout=timeout, stdin=stdin, name=name)
            self.cmd = result.cmd
            self.returncode = result.returncode
            self.raw = result.raw
            self.text = result.text
            self.stdout = result.stdout
            self.stderr = result.stderr

    class BoundedServer(libtmux.Server):
        """A libtmux Server whose every tmux call has a time limit."""

        timeout: float = DEFAULT_TIMEOUT
        #: tmux processes this server object started.
        calls: int = 0

        def cmd(self, cmd: str, *args: Any, target: str | int | None = None) -> tmux_cmd:
            return self.run(cmd, *args, target=target)

        def run(
            self,
            cmd: str,
            *args: Any,
            target: str | int | None = None,
            stdin: bytes | None = None,
            control: bool = False,
        ) -> BoundedCmd:
            # A control client is never the one to start a server (-N): a batch meant
            # for a server that is gone must not act on a fresh one, whose $ids start over.
            argv = ["-N", "-C"] if control else []
            argv += ["-S", str(self.socket_path), cmd]
            if target is not None:
                argv += ["-t", str(target)]
            argv += [str(a) for a in args]
            assert self.tmux_bin is not None
            self.calls += 1
            return BoundedCmd(
                *argv, tmux_bin=self.tmux_bin, timeout=self.timeout, stdin=stdin, name=cmd
            )

    return BoundedServer


class TmuxBackend:
    """A tmux server on one socket, reached through libtmux with bounded calls.

    Parameters
    ----------
    socket : str
        A socket name (``amux``) or an absolute path; a recorded path is used as is.
    tmux_bin : str, optional
        The tmux binary; default: ``tmux`` on ``PATH``.
    timeout : float
        Seconds any single tmux process may take before :class:`~amux_tmux.exc.TmuxTimeout`.
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
        self._batches = 0
        self._direct = 0
        self._server: Any = None

    # --- plumbing ------------------------------------------------------------------

    @property
    def calls(self) -> int:
        """tmux processes started so far (benchmarks and tests count them)."""
        server_calls: int = self._server.calls if self._server is not None else 0
        return server_calls + self._batches + self._direct

    @property
    def tmux_bin(self) -> str:
        """The tmux binary, resolved on first use; :class:`TmuxNotFound` if absent."""
        if self._tmux_bin is None:
            found = shutil.which("tmux")
            if found is None:
                raise exc.TmuxNotFound
            self._tmux_bin = found
        return self._tmux_bin

    @property
    def server(self) -> libtmux.Server:
        """The libtmux Server for this socket (libtmux is imported here, once)."""
        if self._server is None:
            self._check_socket_length()
            server = _bounded_server_class()(socket_path=self.socket_path, tmux_bin=self.tmux_bin)
            server.timeout = self.timeout  # type: ignore[attr-defined]
            self._server = server
        return self._server  # type: ignore[no-any-return]

    def _check_socket_length(self) -> None:
        if len(os.fsencode(self.socket_path)) > 107:
            raise exc.TmuxQueryFailed(
                "connect", f"socket path is longer than 107 bytes: {self.socket_path[:60]}..."
            )

    def cmd(self, *args: str, stdin: bytes | None = None) -> Any:
        """Run one tmux command on our socket, bounded; return libtmux's result."""
        return self.server.run(*args, stdin=stdin)  # type: ignore[attr-defined]

    def _must(self, *args: str, stdin: bytes | None = None) -> Any:
        result = self.cmd(*args, stdin=stdin)
        if result.returncode != 0:
            detail = _first(result.stderr) or "failed"
            if _UNREACHABLE.match(detail):
                raise exc.TmuxQueryFailed(args[0], detail)
            raise exc.TmuxCommandFailed(args[0], detail)
        return result

    def check_version(self) -> None:
        """Check that tmux is one libtmux supports (>= 3.2a); the answer is memoised.

        libtmux runs ``tmux -V`` with no time limit, so a bounded ``tmux -V`` goes
        first: a tmux that hangs is a :class:`~amux_tmux.exc.TmuxTimeout`, not a
        ``start`` that never returns.
        """
        import subprocess  # not needed by commands that never run tmux (mark, ls)

        tmux_bin = self.tmux_bin
        if tmux_bin in _VERSION_OK:
            return
        try:
            subprocess.run(
                [tmux_bin, "-V"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=self.timeout,
                env=client_environ(os.environ),
                check=False,
            )
        except FileNotFoundError:
            raise exc.TmuxNotFound from None
        except subprocess.TimeoutExpired:
            raise exc.TmuxTimeout("-V", self.timeout) from None
        except OSError as err:
            raise exc.TmuxQueryFailed("-V", err.strerror or str(err)) from None
        from libtmux.common import get_version_str, has_minimum_version
        from libtmux.exc import LibTmuxException

        try:
            if has_minimum_version(raises=False, tmux_bin=tmux_bin):
                _VERSION_OK.add(tmux_bin)
                return
            found = get_version_str(tmux_bin=tmux_bin)
        except (LibTmuxException, IndexError) as err:
            raise exc.TmuxQueryFailed("-V", str(err) or "no version") from None
        raise exc.TmuxVersionTooOld(found, "3.2a")

    # --- queries -------------------------------------------------------------------

    def list_live(self) -> Live:
        """Return every session on the server with its first pane, in ONE call.

        Raises
        ------
        TmuxUnavailable
            When tmux answers with anything but "no server running": an unreachable
            server is not an empty one, and callers must not act as if it were.
        """
        result = self.cmd("list-panes", "-a", "-F", _LIVE_FORMAT)
        if result.returncode != 0 and _SERVER_LEAVING.match(_first(result.stderr)):
            # We reached a server on its way out (its last session was just killed):
            # asked again, it is gone ("no server") or it answers.
            time.sleep(0.05)
            result = self.cmd("list-panes", "-a", "-F", _LIVE_FORMAT)
        if result.returncode != 0:
            detail = "\n".join(result.stderr)
            if _NO_SERVER.search(detail):
                return Live({}, no_server=True)
            if detail.strip() == "no current target":
                return Live({})  # a server with no session left (exit-empty off)
            raise exc.TmuxQueryFailed(
                "list-panes", _first(result.stderr) or f"exit {result.returncode}"
            )
        panes: dict[str, LivePane] = {}
        for line in result.stdout:
            pane = _parse_live(line)
            if pane is None:
                raise exc.TmuxQueryFailed("list-panes", f"unexpected output {line[:80]!r}")
            panes.setdefault(pane.session_name, pane)  # a user may split; the first is ours
        return Live(panes)

    def pane_facts(self, pane_id: str, *fields: str) -> list[str] | None:
        """Return ``fields`` (format names) of one pane, or ``None`` if it is gone."""
        _require_exact(pane_id)
        # tmux 3.3a prints empty formats, exit 0, for a target it cannot find: the
        # pane's own id, asked first, tells a missing pane from empty values.
        fmt = _SEP.join(f"#{{{f}}}" for f in ("pane_id", *fields))
        result = self.cmd("display-message", "-p", "-t", pane_id, fmt)
        if result.returncode != 0 or not result.raw.endswith(b"\n"):
            return None
        # Option values are the bytes they were set to: a root path may hold newlines,
        # the separator, or bytes that are not UTF-8. Only the last field may hold _SEP.
        found, *values = os.fsdecode(result.raw[:-1]).split(_SEP, len(fields))
        if not found.startswith("%") or (pane_id.startswith("%") and found != pane_id):
            return None
        return values if len(values) == len(fields) else None

    def pane_snapshot(self, pane_id: str, lines: int) -> tuple[LivePane | None, str | None]:
        """Return one pane as a listing would see it, and its last ``lines`` lines.

        One tmux process (``display-message ; capture-pane``), for commands that watch
        one session tick by tick. ``(None, None)`` when the pane is gone.
        """
        _require_exact(pane_id)
        args = ["display-message", "-p", "-t", pane_id, _LIVE_FORMAT]
        if lines > 0:
            args += [";", "capture-pane", "-p", "-J", "-t", pane_id, "-S", f"-{lines}"]
        result = self.cmd(*args)
        if result.returncode != 0 or not result.stdout:
            return None, None
        pane = _parse_live(result.stdout[0])
        # A target tmux cannot find still gets a line of empty formats (tmux 3.3a).
        if pane is None or not pane.pane_id or (pane_id[0] == "%" and pane.pane_id != pane_id):
            return None, None
        screen = "\n".join(_trim_screen(result.stdout[1:])[-lines:]) if lines > 0 else None
        return pane, screen

    def pane(self, pane_id: str) -> libtmux.Pane:
        """Return libtmux's Pane for ``%id`` (from our own listing; nothing is asked)."""
        from libtmux.pane import Pane

        _require_exact(pane_id)
        return Pane(server=self.server, pane_id=pane_id)

    def session(self, session_id: str) -> libtmux.Session:
        """Return libtmux's Session for ``$id`` (from our own listing; nothing is asked)."""
        from libtmux.session import Session

        _require_exact(session_id)
        return Session(server=self.server, session_id=session_id)

    def capture(self, pane_id: str, lines: int | None = None) -> str:
        """Return a pane's text: its last ``lines`` lines, or all of its history."""
        pane = self.pane(pane_id)
        if lines is None:
            found = pane.capture_pane("-", join_wrapped=True)
        else:
            found = pane.capture_pane(-lines, join_wrapped=True)
        out = _trim_screen(list(found or []))
        if lines is not None:
            out = out[-lines:] if lines > 0 else []
        return "".join(line + "\n" for line in out)

    def captures(self, pane_ids: Sequence[str], lines: int) -> dict[str, str | None]:
        """Return the last ``lines`` lines of many panes in one tmux process."""
        for pane_id in pane_ids:
            _require_exact(pane_id)
        results = self.batch(
            [["capture-pane", "-p", "-J", "-t", p, "-S", f"-{lines}"] for p in pane_ids]
        )
        return {
            p: "\n".join(_trim_screen(list(r.output))[-lines:] if lines > 0 else [])
            if r.ok
            else None
            for p, r in zip(pane_ids, results, strict=True)
        }

    # --- changes -------------------------------------------------------------------

    def new_session(
        self,
        name: str,
        owner_id: str,
        store_id: str,
        root: str,
        command: Sequence[str],
    ) -> Spawned:
        """Create a detached session running ``command`` (the fixed launcher).

        One tmux process: the server options agents expect, the session, then, before
        the launcher can get its spec and exit, ``remain-on-exit`` (a dead pane keeps
        its exit status), the ownership tags, the pane-died hook that records an exit
        when it happens, and the pipe that keeps the pane's output in the log.
        """
        window = f"{exact_session(name)}:"
        self._check_socket_path()
        socket_dir = os.path.dirname(self.socket_path)
        # With -S tmux does not create the socket's directory (it does for -L), and it
        # reports that failure with exit status 0.
        if not os.path.isdir(socket_dir):
            os.makedirs(socket_dir, mode=0o700, exist_ok=True)
        chain: list[str] = ["start-server"]
        for scope, option, value in SERVER_OPTIONS:
            chain += [";", "set-option", "-q", scope, option, value]
        hook = f"run-shell -b {_tmux_quote(fixed_program('pane_died', quiet=True))}"
        chain += [
            ";", "new-session", "-d", "-s", name,
            "-P", "-F", _SPAWN_FORMAT, "--", *map(escape_arg, command),
            ";", "set-option", "-w", "-t", window, "remain-on-exit", "on",
            ";", "set-option", "-t", window, OWNER_OPTION, owner_id,
            ";", "set-option", "-t", window, STORE_OPTION, store_id,
            ";", "set-option", "-t", window, ROOT_OPTION, escape_arg(root),
            ";", "set-hook", "-t", window, "pane-died", hook,
            ";", "pipe-pane", "-O", "-t", window, log_pipe_program(owner_id, root),
        ]  # fmt: skip
        self._check_socket_length()
        self._direct += 1
        result = run_tmux(
            ["-S", self.socket_path, *chain],
            tmux_bin=self.tmux_bin,
            timeout=self.timeout,
            name="new-session",
        )
        fields = result.stdout[0].split(_SEP) if result.stdout else []
        spawned = len(fields) == 4 and fields[2].isdigit()
        if result.returncode != 0 or not spawned:
            if spawned:
                # A later command of the chain failed: the session we made (and only
                # it, by its $id) goes, or it would run untagged and unowned.
                with contextlib.suppress(exc.AmuxError):
                    self.kill_session(fields[0])
            detail = _first(result.stderr) or f"unexpected output {result.stdout[:1]!r}"
            if _UNREACHABLE.match(detail):
                raise exc.TmuxQueryFailed("new-session", detail)
            raise exc.TmuxCommandFailed("new-session", detail)
        return Spawned(fields[0], name, fields[1], int(fields[2]), fields[3])

    def _check_socket_path(self) -> None:
        """Refuse to let tmux start a server on a path that holds something else.

        tmux unlinks whatever it cannot connect to and binds its socket there: a
        ``--socket`` naming a file (a typo; a record edited by hand) would destroy it.
        """
        try:
            st = os.lstat(self.socket_path)
        except FileNotFoundError:
            return
        except OSError as err:
            raise exc.UnsafePath(self.socket_path, err.strerror or str(err)) from None
        if not stat.S_ISSOCK(st.st_mode):
            raise exc.UnsafePath(self.socket_path, "it exists and is not a tmux socket")

    def kill_session(self, session_id: str) -> bool:
        """Kill a session by its ``$id``; False if it was already gone."""
        from libtmux.exc import LibTmuxException

        try:
            self.session(session_id).kill()
        except LibTmuxException as err:
            detail = str(err)
            if _NO_SERVER.search(detail) or "can't find session" in detail:
                return False
            raise exc.TmuxCommandFailed("kill-session", _first(detail.splitlines())) from None
        return True

    def batch(
        self, commands: Sequence[Sequence[str]], server_pid: int | None = None
    ) -> list[Outcome]:
        """Run many commands in ONE tmux process, each with its own outcome.

        tmux's ``a ; b`` chains stop at the first error and fail past ~100 commands, so
        this uses control mode (``-C``), which answers each command with ``%end`` or
        ``%error``. A control client must be attached to something: it gets a private
        session, killed by the batch's last command. (``destroy-unattached`` would do it
        for us, but tmux 3.3a segfaults after a few such sessions while other clients
        come and go, taking every agent with it.) If we are killed half way, the
        session's own command ends it soon after. It never starts a server (``-N``).

        ``server_pid``: the pid of the server the targets (``$3``) were listed on. The
        client asks the server's pid first and sends nothing more to another server
        (one started meanwhile, where ``$3`` names someone else's session).

        Raises
        ------
        TmuxQueryFailed
            No server, another server, or fewer answers than commands.
        """
        if not commands:
            return []
        hidden = f"_amux-batch-{os.getpid()}-{os.urandom(4).hex()}"
        lifetime = str(int(self.timeout * 2) + 5)
        argv = [
            self.tmux_bin, "-N", "-C", "-S", self.socket_path,
            "new-session", "-s", hidden, "-x", "80", "-y", "24", "--", "sleep", lifetime,
            ";", "set-option", "-t", f"={hidden}:", "remain-on-exit", "off",
        ]  # fmt: skip
        leave = _control_line(["kill-session", "-t", f"={hidden}"]) + "\n"
        lines = "".join(_control_line(c) + "\n" for c in commands)  # refuses before tmux runs
        self._batches += 1
        with _ControlClient(argv, self.timeout) as client:
            # Lines sent before the client is attached may run before its session exists.
            if not client.wait_attached(hidden):
                detail = client.error() or "the control client did not attach"
                raise exc.TmuxQueryFailed("control mode", detail)
            if server_pid is not None:
                client.send("display-message -p '#{pid}'\n")
                answer = client.answers(1)
                if not answer or answer[0].output != (str(server_pid),):
                    client.send(leave)
                    client.finish()
                    detail = client.error() or (
                        f"the server on {self.socket_path} is not the one listed "
                        f"(pid {server_pid}); nothing was changed"
                    )
                    raise exc.TmuxQueryFailed("control mode", detail)
            client.send(lines)
            outcomes = client.answers(len(commands))
            # Only now, with every answer in: a client that leaves (its stdin closed)
            # drops the commands it has not run yet, the session's kill among them.
            client.send(leave)
            client.wait_end()
            client.finish()
            if len(outcomes) < len(commands):
                detail = client.error() or f"{len(outcomes)} answers to {len(commands)}"
                raise exc.TmuxQueryFailed("control mode", detail)
            return outcomes

    def set_orphan_tags(self, session_ids: Sequence[str]) -> list[Outcome]:
        """Tag many sessions ``@amux_orphan 1`` (owned, but no record) in one process."""
        for sid in session_ids:
            _require_exact(sid)
        return self.batch([["set-option", "-t", f"{s}:", ORPHAN_OPTION, "1"] for s in session_ids])

    def kill_sessions(self, session_ids: Sequence[str]) -> list[Outcome]:
        """Kill many sessions by ``$id`` in one process."""
        for sid in session_ids:
            _require_exact(sid)
        return self.batch([["kill-session", "-t", s] for s in session_ids])

    def paste(self, pane_id: str, text: str) -> None:
        """Paste ``text`` into a pane as one bracketed paste where the app asked for it.

        The text goes to tmux on stdin (``load-buffer -``), never on its argv, through a
        buffer of our own that the paste deletes.
        """
        _require_exact(pane_id)
        buffer = f"amux-send-{os.getpid()}-{os.urandom(4).hex()}"
        result = self.cmd(
            "load-buffer", "-b", buffer, "-",
            ";", "paste-buffer", "-p", "-d", "-r", "-b", buffer, "-t", pane_id,
            stdin=text.encode("utf-8", "surrogateescape"),
        )  # fmt: skip
        if result.returncode != 0:
            self.cmd("delete-buffer", "-b", buffer)
            raise exc.TmuxCommandFailed("paste-buffer", _first(result.stderr) or "failed")

    def press_enter(self, pane_id: str) -> None:
        """Press Enter in a pane."""
        self.pane(pane_id).enter()

    def switch_client(self, session_id: str) -> None:
        """Switch the calling client (we run inside this server) to session ``$id``."""
        from libtmux.exc import LibTmuxException

        try:
            self.session(session_id).switch_client()
        except LibTmuxException as err:
            raise exc.TmuxCommandFailed("switch-client", _first(str(err).splitlines())) from None

    def open_attached(self, how: str, socket_path: str, target: str, tmux_bin: str) -> None:
        """From inside this (outer) server, show ``target`` of another server.

        ``how`` is ``popup`` (``display-popup -E``, closing when the client detaches)
        or ``window`` (a new window). The socket path travels in the popup's
        environment, so the shell command holds no path but tmux's own.
        """
        _require_exact(target)
        program = (
            f'unset TMUX; exec {shlex.quote(tmux_bin)} -S "$AMUX_ATTACH_SOCKET" '
            f"attach-session -t {shlex.quote(target)}"
        ).replace("#", "##")
        env = ["-e", escape_arg(f"AMUX_ATTACH_SOCKET={socket_path}")]
        if how == "popup":
            self._must("display-popup", "-E", "-w", "90%", "-h", "90%", *env, program)
        else:
            self._must("new-window", *env, program)

    def attach_argv(self, target: str) -> list[str]:
        """Return the command line that attaches a terminal to ``target``."""
        _require_exact(target)
        return [self.tmux_bin, "-S", self.socket_path, "attach-session", "-t", target]


def _require_exact(target: str) -> None:
    # A target may come from a hand-edited record: one ending in ';' would end the tmux
    # command there, and a newline is in no name tmux gives out.
    if not target or target[0] not in "=$%@" or target.endswith(";") or "\n" in target:
        raise ValueError(f"tmux target {target!r} is not exact")


def _parse_live(line: str) -> LivePane | None:
    parts = line.split(_SEP)
    if len(parts) != len(_LIVE_FIELDS):
        return None
    (
        sid,
        name,
        created,
        owner,
        store,
        orphan,
        pane_id,
        pid,
        dead,
        status,
        sig,
        died,
        act,
        server,
    ) = parts
    try:
        return LivePane(
            session_id=sid,
            session_name=name,
            session_created=int(created or 0),
            owner_id=owner or None,
            store_id=store or None,
            orphan_tag=orphan == "1",
            pane_id=pane_id,
            pane_pid=int(pid) if pid.isdigit() else None,
            pane_dead=dead == "1",
            pane_dead_status=int(status) if status.lstrip("-").isdigit() else None,
            pane_dead_signal=int(sig) if sig.isdigit() else None,
            pane_dead_time=int(died) if died.isdigit() else None,
            activity_at=int(act) if act.isdigit() else None,
            server_pid=int(server) if server.isdigit() else None,
        )
    except ValueError:
        return None


class _ControlClient:
    """A tmux control-mode client we talk to line by line, within one deadline."""

    def __init__(self, argv: Sequence[str], timeout: float) -> None:
        import subprocess

        self._deadline = time.monotonic() + timeout
        self._timeout = timeout
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=client_environ(os.environ),
            )
        except FileNotFoundError:
            raise exc.TmuxNotFound from None
        except OSError as err:
            raise exc.TmuxQueryFailed("control mode", err.strerror or str(err)) from None
        self._buffer = b""
        self._eof = False
        self._lines: list[str] = []

    def __enter__(self) -> _ControlClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        for stream in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()

    def send(self, text: str) -> None:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(text.encode())
            self._proc.stdin.flush()
        except BrokenPipeError:
            pass  # the client is gone; what it said is read below

    def finish(self) -> None:
        """Close our side: the client leaves once it has answered everything."""
        assert self._proc.stdin is not None
        if not self._proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self._proc.stdin.close()

    def answers(self, count: int) -> list[Outcome]:
        """Read until ``count`` answers to sent lines (flag 1) came, or the client ended."""
        while True:
            found = [o for flags, o in _control_blocks(self._lines) if flags == "1"]
            if len(found) >= count or self._eof:
                self._lines = self._lines if len(found) < count else self._rest(count)
                return found[:count]
            self._read_some()

    def wait_attached(self, session: str) -> bool:
        """Read until tmux says the client is on ``session``; False if it ended first."""
        signal = "%session-changed "
        while True:
            for line in self._lines:
                if line.startswith(signal) and line.split(" ", 2)[2:] == [session]:
                    return True
            if self._eof:
                return False
            self._read_some()

    def wait_end(self) -> None:
        """Read until the client ends (its session was killed), within the deadline."""
        with contextlib.suppress(exc.TmuxTimeout):
            while not self._eof:
                self._read_some()

    def _rest(self, count: int) -> list[str]:
        """Drop the lines of the first ``count`` answers (so the next read starts after)."""
        seen = 0
        for i, line in enumerate(self._lines):
            if line.startswith(("%end ", "%error ")) and line.rsplit(" ", 1)[-1] == "1":
                seen += 1
                if seen == count:
                    return self._lines[i + 1 :]
        return []

    def _read_some(self) -> None:
        assert self._proc.stdout is not None
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise exc.TmuxTimeout("control mode", self._timeout)
        ready, _, _ = select.select([self._proc.stdout], [], [], left)
        if not ready:
            raise exc.TmuxTimeout("control mode", self._timeout)
        chunk = os.read(self._proc.stdout.fileno(), 65536)
        if not chunk:
            self._eof = True
            chunk = b"\n" if self._buffer else b""
        *complete, self._buffer = (self._buffer + chunk).split(b"\n")
        self._lines += [line.decode("utf-8", "replace") for line in complete]

    def error(self) -> str:
        """Return the first line the client wrote on stderr (after it ended)."""
        import subprocess

        assert self._proc.stderr is not None
        try:
            self._proc.wait(max(0.1, self._deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return ""
        return _first(self._proc.stderr.read().decode("utf-8", "replace").splitlines())


def _control_blocks(lines: Sequence[str]) -> Iterator[tuple[str, Outcome]]:
    """Yield ``(flags, outcome)`` per ``%begin`` … ``%end``/``%error`` block of control
    output; ``flags`` is ``1`` for a command the client sent, ``0`` for one on its argv."""
    it = iter(lines)
    for line in it:
        if not line.startswith("%begin "):
            continue  # notifications between blocks
        tag = line.split(" ")[1:]
        body: list[str] = []
        for inner in it:
            words = inner.split(" ")
            if words[0] in ("%end", "%error") and words[1:] == tag:
                ok = words[0] == "%end"
                flags = tag[2] if len(tag) > 2 else ""
                yield flags, Outcome(ok, tuple(body), "" if ok else _first(body) or "failed")
                break
            body.append(inner)


def _trim_screen(lines: list[str]) -> list[str]:
    """Drop the blank rows tmux pads a screen with, and its "Pane is dead" banner."""
    while lines and not lines[-1].strip():
        lines.pop()
    if lines and lines[-1].startswith("Pane is dead"):
        lines.pop()
        while lines and not lines[-1].strip():
            lines.pop()
    return lines


def _first(lines: Sequence[str]) -> str:
    return next((line.strip() for line in lines if line.strip()), "")
