"""Session lifecycle verbs: start, restart, recover, stop, rm, prune, rename, send, logs,
attach, mark, wait and reconcile.

Each step that changes a record is a read-modify-write under the record's lock, and a
tmux change that goes with it happens while that lock is held. What is true about a
session (has it exited? is it orphaned? what is it doing?) is judged by
:mod:`amux_tmux.reconcile`; this module only gathers the facts and carries out verbs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from amux_tmux import exc, launch, logfile, procs
from amux_tmux import reconcile as rec
from amux_tmux.model import (
    MAX_RUNS,
    SCHEMA_VERSION,
    Activity,
    LivePane,
    ProcessFacts,
    Run,
    Session,
    Status,
    is_valid_id,
    tmux_session_name,
    utcnow,
    validate_label,
    validate_name,
)
from amux_tmux.secrets import (
    MASK,
    Redactor,
    argv_secret_values,
    mask_argv,
    mask_environment,
    split_environment,
)
from amux_tmux.store import FileStore, Problem, Query, SessionStore, without_gc
from amux_tmux.tmux import (
    DEFAULT_SOCKET,
    DEFAULT_TIMEOUT,
    STORE_OPTION,
    Live,
    Spawned,
    TmuxBackend,
    exact_session,
    socket_of_tmux_env,
)

if TYPE_CHECKING:
    from amux_tmux.config import Config, Profile

ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: How long a ``starting`` record may stay so before every command treats it as failed.
START_TIMEOUT = 60.0
HANDOFF_TIMEOUT = 10.0
DEFAULT_STOP_TIMEOUT = 5.0
DEFAULT_SEND_SETTLE = 0.3
RECONCILE_LOCK = "reconcile"
NAMES_LOCK = "names"
#: Lines of a pane's end that waiting patterns are matched against.
WAITING_LINES = 30
_PANE_ID = re.compile(r"%[0-9]+")


@dataclasses.dataclass(frozen=True, slots=True)
class StartSpec:
    """What ``start`` needs to know.

    ``environment`` holds the ``-e`` values (real, unmasked); ``secrets`` the names that
    must be masked whatever they look like (``--secret``); ``caller_environment`` the
    environment of the shell that ran ``start``, which the agent inherits.
    """

    command: Sequence[str] = ()
    agent: str | None = None
    name: str | None = None
    agent_id: str | None = None
    workspace_id: str | None = None
    cwd: str | None = None
    environment: Mapping[str, str] = dataclasses.field(default_factory=dict)
    secrets: Collection[str] = ()
    caller_environment: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class Observed:
    """A record together with what tmux said about it, when tmux was asked."""

    session: Session
    pane: LivePane | None = None
    looked: bool = False
    activity: Activity | None = None
    activity_at: float | None = None
    #: Why tmux could not be asked about this session's server.
    unreachable: str | None = None

    @property
    def state(self) -> str:
        """``alive``, ``exited``, ``gone``, ``unknown`` (tmux unreachable) or ``-``."""
        if not self.looked:
            return "-"
        if self.unreachable:
            return "unknown"
        if self.pane is None:
            return "gone"
        return "exited" if self.pane.pane_dead else "alive"


@dataclasses.dataclass(frozen=True, slots=True)
class Listed:
    """A page of sessions, every bad record met, and how many matched in all."""

    rows: list[Observed]
    problems: list[Problem]
    total: int


@dataclasses.dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What a reconcile run planned and, unless it was a dry run, what it did."""

    actions: list[rec.Action]
    outcomes: list[rec.Outcome]
    dry_run: bool
    tmux_calls: int
    problems: list[Problem] = dataclasses.field(default_factory=list)
    #: Socket path -> why its server could not be asked (its records were left alone).
    unreachable: dict[str, str] = dataclasses.field(default_factory=dict)
    #: Sessions on the visited servers that this store does not own.
    foreign: int = 0

    @property
    def failed(self) -> list[rec.Outcome]:
        """Outcomes of actions that were attempted and failed."""
        return [o for o in self.outcomes if o.failed]


@dataclasses.dataclass(frozen=True, slots=True)
class Recovered:
    """One line of ``recover``: a session, and what became of it."""

    session: Session
    error: str | None = None
    resumed: bool = False
    #: Why it was left alone (it is no longer orphaned).
    skipped: str | None = None


class Manager:
    """Runs agent sessions in tmux and keeps their records true.

    Parameters
    ----------
    store : SessionStore
        Where records live.
    socket : str
        tmux socket name or path for new sessions; existing sessions are always reached
        through the socket path in their record.
    tmux_bin : str, optional
        tmux binary (default: from ``PATH``).
    tmux_timeout : float
        Seconds any one tmux process may take.
    grace : float
        Seconds a record must be left alone after its last change before an absent
        tmux session counts against it.
    config : Config, optional
        Agent profiles; loaded from the store's root on first need when not given.
    user_config : Path, optional
        The user's own profile file, read under the project's.
    environ : Mapping, optional
        An environment that says where the user's profile file is (XDG), when
        ``user_config`` is not given.
    """

    def __init__(
        self,
        store: SessionStore,
        *,
        socket: str = DEFAULT_SOCKET,
        tmux_bin: str | None = None,
        tmux_timeout: float = DEFAULT_TIMEOUT,
        grace: float = rec.DEFAULT_GRACE,
        config: Config | None = None,
        user_config: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.tmux_bin = tmux_bin
        self.tmux_timeout = tmux_timeout
        self.backend = TmuxBackend(socket, tmux_bin, tmux_timeout)
        self.grace = grace
        self._config = config
        self._user_config = user_config
        self._environ = environ
        self._backends: dict[str, TmuxBackend] = {
            _same_socket(self.backend.socket_path): self.backend
        }
        #: Things a command should tell its user, found on the way (one line each).
        self.warnings: list[str] = []

    @property
    def config(self) -> Config:
        """Agent profiles (built-in, the user's, the project's)."""
        if self._config is None:
            from amux_tmux.config import load_config, user_config_path

            user = self._user_config
            if user is None and self._environ is not None:
                user = user_config_path(self._environ)
            self._config = load_config(self.store.root, user)
        return self._config

    def backend_at(self, socket_path: str) -> TmuxBackend:
        """Return the backend for the server on ``socket_path``.

        Paths that differ only by a symlinked directory name one server, and one backend.
        """
        key = _same_socket(socket_path)
        if key not in self._backends:
            self._backends[key] = TmuxBackend(socket_path, self.tmux_bin, self.tmux_timeout)
        return self._backends[key]

    def backend_for(self, session: Session) -> TmuxBackend:
        """Return the backend for the server a record's session was started on."""
        return self.backend_at(session.tmux_socket or self.backend.socket_path)

    def _effects(
        self, backend: TmuxBackend, live: Callable[[], Mapping[str, LivePane]]
    ) -> rec.Effects:
        listed: list[int | None] = [None]

        def list_live() -> Mapping[str, LivePane]:
            panes = live()
            listed[0] = next((p.server_pid for p in panes.values()), None)
            return panes

        def tmux(kills: Sequence[str], tags: Sequence[str]) -> dict[str, str]:
            outcomes = backend.batch(
                [["kill-session", "-t", k] for k in kills]
                + [["set-option", "-t", f"{t}:", "@amux_orphan", "1"] for t in tags],
                server_pid=listed[0],
            )
            return {
                target: ("" if o.ok else o.error or "failed")
                for target, o in zip([*kills, *tags], outcomes, strict=True)
            }

        return rec.Effects(
            store_id=self.store.store_id,
            list_live=list_live,
            update=self.store.update,
            delete=self.store.delete,
            get=self.store.get,
            lock=self.store.lock,
            tmux=tmux,
            facts=procs.facts,
        )

    # --- start ---------------------------------------------------------------------

    def start(self, spec: StartSpec) -> Session:
        """Create a record and its tmux session; return the ``running`` record.

        Raises
        ------
        UsageError
            Bad command, cwd, name, labels or environment; nothing was written.
        TmuxUnavailable
            tmux missing, too old or unreachable; no record is left (but after a
            timeout, when tmux may still act: then a failed record stays for reconcile).
        SessionStartFailed
            tmux refused, or the agent could not be started or died at once.
        """
        profile = self.config.profile(spec.agent) if spec.agent else None
        command = [*(profile.command if profile else ()), *spec.command]
        environment = dict(spec.environment)
        forced = set(spec.secrets)
        if profile is not None:
            for key in (*profile.env, *profile.secrets):
                if key not in environment and key in spec.caller_environment:
                    environment[key] = spec.caller_environment[key]
            forced.update(profile.secrets)
        prepared = self._prepare(
            command,
            spec.cwd,
            environment,
            forced,
            spec.caller_environment,
            agent_id=spec.agent_id or spec.agent,
            workspace_id=spec.workspace_id,
        )
        name = spec.name
        if name is not None:
            validate_name(name)
        now = utcnow()
        with contextlib.ExitStack() as stack:
            store_id = self.store.ensure_store_id()
            sid = self.store.new_id()
            if name is not None:
                # Held until the record exists, so two starts cannot both take a name.
                stack.enter_context(self.store.store_lock(NAMES_LOCK, 10.0))
                self._check_name_free(name, None)
            stack.enter_context(self.store.lock(sid))
            record = Session(
                id=sid,
                status=Status.STARTING,
                created_at=now,
                updated_at=now,
                name=name,
                agent_id=prepared.agent_id,
                profile=profile.name if profile is not None else None,
                profile_args=len(spec.command) if profile is not None else 0,
                workspace_id=prepared.workspace_id,
                tmux_socket=self.backend.socket_path,
                tmux_session=tmux_session_name(sid),
                command=prepared.masked_command,
                cwd=prepared.cwd,
                environment=prepared.masked_environment,
                masked_env=prepared.masked_env,
                masked_args=prepared.masked_args,
            )
            self.store.create(record)
            return self._launch(record, prepared, store_id)
        raise AssertionError("unreachable")  # pragma: no cover

    def _prepare(
        self,
        command: Sequence[str],
        cwd: str | None,
        environment: Mapping[str, str],
        forced: Collection[str],
        caller: Mapping[str, str],
        *,
        agent_id: str | None,
        workspace_id: str | None,
    ) -> _Prepared:
        """Check everything about a launch before anything is created."""
        if not command or not command[0]:
            raise exc.UsageError("no command given; name a profile or put the command after '--'")
        for part in command:
            if "\0" in part:
                raise exc.UsageError("a command argument holds a NUL byte")
        where = os.path.abspath(cwd or os.getcwd())
        if not os.path.isdir(where):
            raise exc.UsageError(f"working directory {where} does not exist")
        if not _is_utf8(where):
            raise exc.UsageError("the working directory's path is not valid UTF-8")
        for key, value in environment.items():
            if ENV_NAME_RE.fullmatch(key) is None:
                raise exc.UsageError(f"invalid environment variable name {key[:40]!r}")
            if "\0" in value:
                raise exc.UsageError(f"the value of {key} holds a NUL byte")
            if not _is_utf8(value):
                raise exc.UsageError(
                    f"the value of {key} is not valid UTF-8, so it cannot be recorded; "
                    "export it instead (the agent inherits this shell's environment)"
                )
        for key in forced:
            if ENV_NAME_RE.fullmatch(key) is None:
                raise exc.UsageError(f"invalid environment variable name {key[:40]!r}")
        if agent_id is not None:
            validate_label("agent", agent_id)
        if workspace_id is not None:
            validate_label("workspace", workspace_id)
        agent_env = {k: v for k, v in caller.items() if not k.startswith("TMUX")}
        agent_env.update(environment)
        exe = resolve_command(command[0], agent_env.get("PATH", os.defpath), where)
        _public, secret = split_environment(environment, forced=forced)
        # What the agent inherits is its to print; our messages quote what it printed.
        _, inherited = split_environment({k: v for k, v in caller.items() if k not in environment})
        redactor = Redactor(
            [*secret.values(), *inherited.values(), *argv_secret_values(command, secret.values())]
        )
        # Fail before anything exists when there is no tmux at all. (Its version is
        # checked only if tmux refuses: a process per start saved.)
        self.backend.tmux_bin  # noqa: B018
        masked_command = mask_argv(command, secret.values())
        masked_environment = mask_environment(environment, forced)
        return _Prepared(
            argv=tuple(command),
            exe=exe,
            cwd=where,
            agent_env=agent_env,
            masked_command=masked_command,
            masked_environment=masked_environment,
            masked_env=tuple(k for k, v in environment.items() if masked_environment[k] != v),
            masked_args=tuple(i for i, a in enumerate(command) if masked_command[i] != a),
            redact=redactor,
            agent_id=agent_id,
            workspace_id=workspace_id,
        )

    def _launch(self, record: Session, prepared: _Prepared, store_id: str) -> Session:
        """Create the tmux session of a ``starting`` record (its lock held) and hand over."""
        sid = record.id
        backend = self.backend_for(record)
        if not os.path.exists(backend.socket_path):
            # new-session would start a second server on the path and hide the first.
            others = self.store.list(Query(include_ended=False)).sessions
            try:
                _check_no_agent_alive(
                    backend.socket_path,
                    [s for s in others if self.backend_for(s) is backend and s.id != sid],
                )
            except exc.TmuxUnavailable:
                with contextlib.suppress(exc.AmuxError):
                    self.store.delete(sid)
                raise
        env = {
            **prepared.agent_env,
            "AMUX_SESSION_ID": sid,
            "AMUX_ROOT": str(self.store.root),
        }
        spawned = None
        try:
            with (
                _interruptible(),
                launch.Handoff(
                    self.store.runtime_dir(), f"{sid}-{os.urandom(4).hex()}"
                ) as handoff,
            ):
                pane_cmd = launch.pane_command(str(handoff.spec_path))
                # psutil loads while tmux works; the launcher is alive (waiting for its
                # spec) when its start time is read, so the time is the agent's.
                loaded = _in_background(procs.load)
                spawned = self._new_session(backend, sid, store_id, pane_cmd, prepared.redact)
                loaded()
                started = procs.facts(spawned.pane_pid)
                try:
                    handoff.send(prepared.argv, prepared.exe, prepared.cwd, env, HANDOFF_TIMEOUT)
                except launch.LaunchFailed as err:
                    why = prepared.redact(str(err))
                    self._kill_quietly(backend, spawned.session_id)
                    self._fail_start(sid, why, err.code)
                    raise exc.SessionStartFailed(sid, why) from None
                made = spawned
                # Still interruptible: a start stopped before 'running' is written
                # leaves no agent behind.
                running = self.store.update(
                    sid,
                    lambda s: s.transition(
                        Status.RUNNING,
                        tmux_socket=made.socket_path or s.tmux_socket,
                        tmux_session=made.session_name,
                        tmux_session_id=made.session_id,
                        pane_id=made.pane_id,
                        pid=made.pane_pid,
                        pid_create_time=started.create_time,
                        started_at=utcnow(),
                    ),
                )
        except exc.AmuxError:
            raise  # each failure above left the record and tmux as it says
        except BaseException:
            if spawned is not None:
                self._kill_quietly(backend, spawned.session_id)
            else:
                # Stopped while tmux was making the session: it may exist, unreported.
                self._kill_leftover(backend, sid, store_id)
            self._fail_start(sid, "start was interrupted", None)
            raise
        if not rec.is_alive(running, procs.facts(spawned.pane_pid)):
            self._failed_at_once(running, prepared.redact)
        return running

    def _kill_leftover(self, backend: TmuxBackend, sid: str, store_id: str) -> None:
        """Kill the session an interrupted start may have made: found by its name AND
        both tags, so a session this start did not make is never touched."""
        with contextlib.suppress(exc.AmuxError):
            pane = backend.list_live().panes.get(tmux_session_name(sid))
            if pane is not None and pane.owner_id == sid and pane.store_id == store_id:
                self._kill_quietly(backend, pane.session_id)

    def _failed_at_once(self, running: Session, redact: Redactor) -> None:
        """The agent is already gone as ``start`` returns: record how it ended, and if it
        failed, say so (exit 1) with its status and the last line it printed."""
        with contextlib.suppress(exc.AmuxError):
            self._settle_gone_agents([running])
        ended = self.store.get(running.id)
        if ended.status is not Status.FAILED:
            return  # still settling, or it did its job and exited 0
        last = ""
        with contextlib.suppress(exc.AmuxError, OSError):
            text = logfile.read(self.store.log_path(running.id), 20, False) or ""
            if not text.strip() and running.pane_id:
                text = self.backend_for(running).capture(running.pane_id, 20)
            last = next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "")
        why = ended.error or f"agent exited with status {ended.exit_code}"
        last = redact(last)  # before it is cut: a cut secret is no longer one to mask
        said = f' (last line: "{last[:200]}")' if last else ""
        raise exc.SessionStartFailed(running.id, redact(f"{why}, at once{said}"))

    def _new_session(
        self,
        backend: TmuxBackend,
        sid: str,
        store_id: str,
        pane_cmd: Sequence[str],
        redact: Redactor,
    ) -> Spawned:
        """Create the session; on failure leave the record as the failure says.

        Nothing was created (tmux missing, unreachable, too old): no record either.
        tmux did not answer in time (it may still act): a failed record stays, for
        reconcile. tmux refused: a failed record, and the reason.
        """
        try:
            return backend.new_session(
                tmux_session_name(sid), sid, store_id, str(self.store.root), pane_cmd
            )
        except exc.TmuxTimeout as err:
            self._fail_start(sid, redact(str(err)), None)
            raise
        except exc.TmuxUnavailable:
            with contextlib.suppress(exc.AmuxError):
                self.store.delete(sid)
            raise
        except exc.TmuxCommandFailed as err:
            try:
                backend.check_version()  # a tmux too old says so (exit 5)
            except exc.TmuxUnavailable:
                with contextlib.suppress(exc.AmuxError):
                    self.store.delete(sid)
                raise
            why = redact(str(err))
            if "command too long" in why:
                why += (
                    f" (the project's path, {len(os.fsencode(self.store.root))} bytes, is "
                    "too long for one tmux command)"
                )
            if "duplicate session" in why:
                why += (
                    f" (tmux already has a session named {tmux_session_name(sid)} that this "
                    "project did not start, a copy of this project's? It was left alone)"
                )
            self._fail_start(sid, why, None)
            raise exc.SessionStartFailed(sid, why) from None

    def _fail_start(self, sid: str, why: str, code: int | None) -> None:
        def fail(s: Session) -> Session:
            if s.status not in (Status.CREATED, Status.STARTING):
                return s  # the start finished meanwhile
            return s.transition(Status.FAILED, error=why, exit_code=code, stopped_at=utcnow())

        with contextlib.suppress(exc.AmuxError):
            self.store.update(sid, fail)

    @staticmethod
    def _kill_quietly(backend: TmuxBackend, session_id: str) -> None:
        with contextlib.suppress(exc.AmuxError):
            backend.kill_session(session_id)

    def _check_name_free(self, name: str, own_id: str | None) -> None:
        """Refuse a name a live session has, or one that is (a prefix of) another id."""
        listing = self.store.list(Query())
        ids = [s.id for s in listing.sessions] + [
            p.session_id for p in listing.problems if p.session_id
        ]
        for other in listing.sessions:
            if other.id != own_id and other.name == name and not other.status.ended:
                raise exc.NameInUse(name, other.id)
        for other_id in ids:
            if other_id != own_id and other_id.startswith(name):
                raise exc.UsageError(
                    f"name {name!r} is (the start of) the id of session {other_id}; "
                    "a reference to it would be ambiguous: choose another name"
                )

    # --- restart and recover ---------------------------------------------------------

    def restart(
        self,
        ref: str,
        resume: bool = False,
        caller: Mapping[str, str] | None = None,
        *,
        only_orphaned: bool = False,
    ) -> Session:
        """Run a session again under the same id, name, cwd and command.

        A live agent is stopped first. Masked secrets are taken again from ``caller``'s
        environment by name; ``resume`` runs the profile's resume command instead.

        Raises
        ------
        UsageError
            A masked secret is not in the environment (named), a masked argument, or
            no resume command.
        """
        target = self.resolve(ref)
        sid = target.id
        environ = dict(os.environ if caller is None else caller)
        with contextlib.ExitStack() as held:
            if target.name is not None:
                # Names before the record, as start and rename take them.
                held.enter_context(self.store.store_lock(NAMES_LOCK, 10.0))
            held.enter_context(self.store.lock(sid))
            record = self.store.get(sid)
            if only_orphaned and record.status is not Status.ORPHANED:
                raise exc.NotOrphaned(sid, record.status.value)
            if record.name is not None:
                self._check_name_free(record.name, sid)
            prepared = self._prepare_again(record, resume, environ)
            looked = self.observe([record])[0]
            if looked.unreachable:
                raise exc.TmuxUnavailable(looked.unreachable)
            if looked.pane is not None:
                record = self._stop_locked(looked, DEFAULT_STOP_TIMEOUT)
            store_id = self.store.ensure_store_id()
            now = utcnow()
            run = Run(
                started_at=record.started_at,
                stopped_at=record.stopped_at or now,
                # How the run ended: an exit, a stop, or its server gone (orphaned).
                status=(
                    record.status
                    if record.status.ended or record.status is Status.ORPHANED
                    else Status.STOPPED
                ),
                exit_code=record.exit_code,
                error=record.error,
            )

            def again(s: Session) -> Session:
                return dataclasses.replace(
                    s,
                    status=Status.STARTING,
                    runs=(*s.runs, run)[-MAX_RUNS:],
                    tmux_socket=self.backend_for(s).socket_path,
                    tmux_session_id=None,
                    pane_id=None,
                    pid=None,
                    pid_create_time=None,
                    exit_code=None,
                    error=None,
                    started_at=None,
                    stopped_at=None,
                    activity=None,
                    activity_at=None,
                    # The command stays the session's own (a resume runs the profile's).
                    environment=prepared.masked_environment,
                    masked_env=prepared.masked_env,
                    masked_args=s.masked_args
                    if s.schema >= SCHEMA_VERSION
                    else tuple(i for i, part in enumerate(s.command) if MASK in part),
                    schema=SCHEMA_VERSION,
                )

            record = self.store.update(sid, again)
            return self._launch(record, prepared, store_id)

    def _prepare_again(
        self, record: Session, resume: bool, environ: Mapping[str, str]
    ) -> _Prepared:
        command = list(record.command)
        if record.schema >= SCHEMA_VERSION:
            masked_args = set(record.masked_args)
            masked_names = set(record.masked_env)
        else:  # records from before masks were listed: a "***" in them was a mask
            masked_args = {i for i, part in enumerate(command) if MASK in part}
            masked_names = {k for k, v in record.environment.items() if MASK in v}
        if masked_args and not resume:
            raise exc.UsageError(
                f"session {record.id} cannot be restarted: argument(s) "
                f"{', '.join(map(str, sorted(masked_args)))} of its command were secret and "
                "are not stored; pass such values with -e/--secret instead"
            )
        if resume:
            resumed = self._resume_argv(record)
            if resumed is None:
                raise exc.UsageError(
                    f"session {record.id} has no resume command: it was not started from a "
                    f"profile with 'resume' (agent {record.agent_id or '-'})"
                )
            command = resumed
        environment = dict(record.environment)
        missing = sorted(k for k in masked_names if k not in environ)
        if missing:
            raise exc.UsageError(
                f"session {record.id} needs {', '.join(missing)} from the environment "
                "(its value was secret and is not stored); export it and try again"
            )
        for key in masked_names:
            environment[key] = environ[key]
        return self._prepare(
            command,
            record.cwd,
            environment,
            masked_names,
            environ,
            agent_id=record.agent_id,
            workspace_id=record.workspace_id,
        )

    def _resume_argv(self, record: Session) -> list[str] | None:
        """Return the resume argv of the profile the session was started from (as the
        profile is now), plus the arguments given after ``--``; None if there is none."""
        if record.profile is None:
            return None  # started from a command (a label is not a profile)
        profile = self.config.agents.get(record.profile)
        if profile is None or not profile.resume:
            return None
        count = record.profile_args
        extra = list(record.command[len(record.command) - count :]) if count else []
        first_extra = len(record.command) - count
        if any(i >= first_extra for i in record.masked_args):
            return None  # a secret among them is not stored
        return [*profile.resume, *extra]

    def _profile_of(self, record: Session) -> Profile | None:
        name = record.profile or record.agent_id
        return None if name is None else self.config.agents.get(name)

    def _profile_for_looking(self, record: Session) -> Profile | None:
        """The profile, for commands that only look: a broken config is a warning there."""
        try:
            return self._profile_of(record)
        except exc.ConfigError as err:
            if str(err) not in self.warnings:
                self.warnings.append(f"{err} (activity is judged without profiles)")
            return None

    def recover(
        self, dry_run: bool = False, caller: Mapping[str, str] | None = None
    ) -> list[Recovered]:
        """Restart every ``orphaned`` session of this store, oldest first (after a reboot).

        A session whose profile has a resume command is resumed. One failure does not
        stop the others.
        """
        orphans = self.store.list(Query(status={Status.ORPHANED})).sessions
        if orphans:
            self.config  # noqa: B018 - a broken config stops recover before anything runs
        done: list[Recovered] = []
        for record in orphans:
            try:
                resume = self._resume_argv(record) is not None
            except exc.AmuxError as err:  # a broken config: say so on its line
                done.append(Recovered(record, str(err), False))
                continue
            if dry_run:
                done.append(Recovered(record, None, resume))
                continue
            try:
                again = self.restart(record.id, resume, caller, only_orphaned=True)
                done.append(Recovered(again, None, resume))
            except exc.NotOrphaned as err:  # another recover (or a restart) was first
                done.append(Recovered(record, None, resume, skipped=str(err)))
            except exc.AmuxError as err:
                done.append(Recovered(record, str(err), resume))
        return done

    # --- looking -------------------------------------------------------------------

    def resolve(self, ref: str) -> Session:
        """Return the record a reference (id, name or unique id prefix) points at."""
        return self.store.resolve(ref)

    def _listing(self, backend: TmuxBackend, records: Sequence[Session]) -> dict[str, LivePane]:
        """List one server; "no server" while a recorded agent lives means unreachable.

        Exits that tmux saw but did not yet reap are filled in from /proc.
        """
        live = backend.list_live()
        if live.no_server:
            _check_no_agent_alive(backend.socket_path, records)
        return _with_zombie_exits(backend, live)

    def observe(self, sessions: Sequence[Session], activity: bool = False) -> list[Observed]:
        """Ask tmux (one listing per server) about ``sessions`` and record what changed.

        With ``activity``, also what each live agent is doing (at most one more tmux
        process per server, for the waiting patterns).
        """
        by_socket: dict[str, list[Session]] = {}
        for session in sessions:
            by_socket.setdefault(self.backend_for(session).socket_path, []).append(session)
        store_id = self.store.store_id
        seen: dict[str, Observed] = {}
        for path, group in by_socket.items():
            backend = self.backend_at(path)
            try:
                live = self._listing(backend, group)
            except (exc.TmuxUnavailable, exc.TmuxCommandFailed) as err:
                for s in group:
                    seen[s.id] = Observed(s, looked=True, unreachable=str(err))
                continue
            matched = rec.match(group, live, store_id)
            effects = self._effects(backend, lambda live=live: live)  # type: ignore[misc]
            settled = [
                rec.settle(
                    s,
                    matched.get(s.id),
                    effects,
                    self._facts_for(s, matched.get(s.id)),
                    self.grace,
                )
                for s in group
            ]
            waiting = self._waiting(backend, settled, matched) if activity else {}
            now = time.time()
            for s in settled:
                pane = matched.get(s.id)
                found = (
                    rec.derive_activity(s, pane, now, s.id in waiting, self._working_seconds(s))
                    if activity
                    else None
                )
                seen[s.id] = Observed(
                    s, pane, True, found[0] if found else None, found[1] if found else None
                )
        return [seen[s.id] for s in sessions]

    def _facts_for(self, record: Session, pane: LivePane | None) -> ProcessFacts:
        # Only an exit tmux has not explained, or a missing session, needs the pid.
        if record.pid is None or (pane is not None and not pane.pane_dead):
            return ProcessFacts(None)
        return procs.facts(record.pid)

    def _working_seconds(self, record: Session) -> float:
        profile = self._profile_for_looking(record)
        return profile.working_seconds if profile is not None else rec.WORKING_SECONDS

    def _waiting(
        self, backend: TmuxBackend, records: Sequence[Session], matched: Mapping[str, LivePane]
    ) -> set[str]:
        """Return ids of live agents whose profile's waiting pattern matches their pane."""
        wanted: dict[str, tuple[Session, Profile]] = {}
        for record in records:
            pane = matched.get(record.id)
            profile = self._profile_for_looking(record)
            if pane is not None and not pane.pane_dead and profile is not None and profile.waiting:
                wanted[pane.pane_id] = (record, profile)
        if not wanted:
            return set()
        try:
            screens = backend.captures(list(wanted), WAITING_LINES)
        except exc.AmuxError:
            return set()
        return {
            record.id
            for pane_id, (record, profile) in wanted.items()
            if (text := screens.get(pane_id)) is not None and profile.is_waiting(text.split("\n"))
        }

    def look(self, ref: str, activity: bool = False) -> Observed:
        """Resolve ``ref`` and observe it."""
        return self.observe([self.resolve(ref)], activity)[0]

    def listing(self, query: Query, live: bool = False) -> Listed:
        """Return records like ``docker ps`` (ended ones only when the query says so).

        Without ``live`` this reads the store alone (an exit is recorded when it happens,
        by the pane-died hook). A ``starting`` record older than :data:`START_TIMEOUT`
        is recorded as failed either way.
        """
        listing = self.store.list(query)
        changed = False
        for s in listing.sessions:
            if _start_timed_out(s):
                self._fail_stale_start(s.id)
                changed = True
        if not live and self._settle_gone_agents(listing.sessions):
            changed = True
        if changed:
            listing = self.store.list(query)
        if not live:
            return Listed([Observed(s) for s in listing.sessions], listing.problems, listing.total)
        return Listed(
            self.observe(listing.sessions, activity=True), listing.problems, listing.total
        )

    def _settle_gone_agents(self, sessions: Sequence[Session]) -> bool:
        """The cheap local check behind a truthful plain ``ls``: is each agent still there?

        The pane-died hook records almost every exit, but tmux 3.3a sometimes neither
        reaps an agent nor runs the hook. A recorded pid that is a zombie tells its exit
        status (recorded at once); one that is gone means tmux is asked, once per server.
        Returns whether anything may have changed.
        """
        running = [s for s in sessions if s.status in (Status.RUNNING, Status.STOPPING) and s.pid]
        if not running:
            return False
        gone = []
        for s in running:
            assert s.pid is not None
            facts = procs.facts(s.pid)
            if rec.is_alive(s, facts):
                continue
            if facts.zombie and not rec.pid_reused(s, facts):
                known = procs.zombie_exit(s.pid)
                # A hang-up is how an agent dies when its tmux server goes (kill-server,
                # a crash): not its own failure. tmux is asked; if the server is gone,
                # the record becomes orphaned, and `recover` brings the agent back.
                if known is not None and not _hung_up(known):
                    self._record_exit(s, known)
                    continue
            gone.append(s)
        if gone:
            with contextlib.suppress(exc.AmuxError):
                self.observe(gone)
        return True

    def _record_exit(self, session: Session, known: tuple[int | None, int | None]) -> None:
        """Record an exit read from the agent's zombie, if the record still expects it."""
        code, sig = known

        def ended(s: Session) -> Session:
            if s.status not in (Status.RUNNING, Status.STOPPING) or s.pid != session.pid:
                return s
            if code == 0:
                return s.transition(Status.COMPLETED, exit_code=0, stopped_at=utcnow())
            why = (
                f"agent exited with status {code}"
                if code is not None
                else (f"agent was killed by signal {sig}")
            )
            return s.transition(Status.FAILED, exit_code=code, error=why, stopped_at=utcnow())

        with contextlib.suppress(exc.AmuxError):
            self.store.update(session.id, ended)

    def _fail_stale_start(self, sid: str) -> None:
        def fail(s: Session) -> Session:
            if not _start_timed_out(s):
                return s  # the start finished meanwhile
            return s.transition(
                Status.FAILED, error="start did not finish in time", stopped_at=utcnow()
            )

        with contextlib.suppress(exc.AmuxError):
            self.store.update(sid, fail)

    # --- stop, remove, prune, rename -------------------------------------------------

    def stop(self, ref: str, timeout: float = DEFAULT_STOP_TIMEOUT) -> Session:
        """Stop a session from any state: TERM the agent, then kill its tmux session.

        The agent gets ``timeout`` seconds to exit on SIGTERM before the session is
        killed (tmux then sends SIGHUP). Only the process tmux reports for the pane is
        signalled. An exit status tmux saw is kept.
        """
        sid = self.resolve(ref).id
        with self.store.lock(sid):
            looked = self.observe([self.store.get(sid)])[0]
            if looked.unreachable:
                record = looked.session
                if record.pid is not None and rec.is_alive(record, procs.facts(record.pid)):
                    raise exc.TmuxUnavailable(looked.unreachable)
            return self._stop_locked(looked, timeout)

    def _stop_locked(self, looked: Observed, timeout: float) -> Session:
        session, pane = looked.session, looked.pane
        sid = session.id
        backend = self.backend_for(session)
        if pane is not None and not pane.pane_dead:
            if not session.status.ended and session.status is not Status.STOPPING:
                session = self.store.update(sid, lambda s: s.transition(Status.STOPPING))
            if timeout > 0 and pane.pane_pid is not None:
                # tmux vouches for this pid: it is the pane's process now.
                pane_facts = procs.facts(pane.pane_pid)
                procs.terminate(pane.pane_pid, pane_facts.create_time, timeout)
                again = rec.match(
                    [session], self._listing(backend, [session]), self.store.store_id
                )
                pane = again.get(sid, pane)
        if pane is not None:
            backend.kill_session(pane.session_id)
        code = pane.pane_dead_status if pane is not None and pane.pane_dead else None

        def finish(s: Session) -> Session:
            changes: dict[str, object] = {"stopped_at": s.stopped_at or utcnow()}
            if code is not None and s.exit_code is None:
                changes["exit_code"] = code
            if s.status.ended:
                return s.evolve(**changes) if s.stopped_at is None else s
            return s.transition(Status.STOPPED, **changes)

        return self.store.update(sid, finish)

    def remove(self, ref: str, force: bool = False) -> Session | str:
        """Delete a record, its log and its tmux session; a live one only with ``force``.

        A record file that cannot be read is removed only with ``force`` (its session,
        if this store owns it, goes too); the id is returned then instead of a record.
        """
        try:
            sid = self.resolve(ref).id
        except exc.CorruptRecord:
            if not force or not is_valid_id(ref):
                raise
            return self._discard(ref)
        with self.store.lock(sid):
            session = self.store.get(sid)
            looked = self.observe([session])[0]
            if looked.unreachable:
                if not force:
                    raise exc.TmuxUnavailable(looked.unreachable)
                if session.pid is not None and rec.is_alive(session, procs.facts(session.pid)):
                    raise exc.TmuxUnavailable(
                        f"{looked.unreachable}; its agent (pid {session.pid}) still runs, "
                        "so the record stays"
                    )
            pane = looked.pane
            if pane is not None:
                if not pane.pane_dead and not force:
                    raise exc.SessionIsLive(sid)
                self.backend_for(session).kill_session(pane.session_id)
            removed = self.store.delete(sid)
            _remove_log(self.store.log_path(sid))
            return removed

    def _discard(self, sid: str) -> str:
        """Remove an unreadable record and the session this store owns under its id."""
        store_id = self.store.store_id
        try:
            live = self.backend.list_live().panes
        except exc.TmuxUnavailable:
            live = {}
        pane = live.get(tmux_session_name(sid))
        if pane is not None and rec.owner_of(pane, store_id) == sid:
            self.backend.kill_session(pane.session_id)
        self.store.discard(sid)
        _remove_log(self.store.log_path(sid))
        return sid

    def prune(self, dry_run: bool = False) -> list[Session]:
        """Remove the records (and logs, and dead sessions) of ended sessions."""
        ended = [s for s in self.store.list(Query()).sessions if s.status.ended]
        if dry_run:
            return ended
        removed = []
        for session in ended:
            with contextlib.suppress(exc.SessionNotFound, exc.SessionIsLive):
                removed.append(self._prune_one(session.id))
        return removed

    def _prune_one(self, sid: str) -> Session:
        with self.store.lock(sid):
            session = self.store.get(sid)
            if not session.status.ended:
                raise exc.SessionNotFound(sid)  # changed meanwhile: not ours to prune
            looked = self.observe([session])[0]
            if looked.pane is not None:
                if not looked.pane.pane_dead:
                    raise exc.SessionIsLive(sid)
                self.backend_for(session).kill_session(looked.pane.session_id)
            removed = self.store.delete(sid)
            _remove_log(self.store.log_path(sid))
            return removed

    def rename(self, ref: str, name: str) -> Session:
        """Give a session a new name (its id and tmux session name stay)."""
        validate_name(name)
        sid = self.resolve(ref).id
        with self.store.store_lock(NAMES_LOCK, 10.0):
            self._check_name_free(name, sid)
            return self.store.update(sid, lambda s: s.evolve(name=name))

    # --- the agent's own word, and waiting -----------------------------------------

    def mark(self, ref: str, state: Activity) -> Session:
        """Record what the agent says it is doing (from its hooks; no tmux call)."""
        sid = self.resolve(ref).id
        return self.store.update(sid, lambda s: s.marked(state))

    def wait(
        self,
        ref: str,
        until: str,
        timeout: float | None,
        interval: float = 0.25,
    ) -> Observed | None:
        """Wait until the session has exited or its agent is ``working``/``waiting``/``idle``.

        Returns the observation that met the condition, or ``None`` on timeout. Each tick
        starts at most one tmux process: ``exited`` reads the record (the pane-died hook
        writes it) and asks tmux only every few ticks, to notice a server that died; the
        activity states ask for the one pane and its last lines together.

        Raises
        ------
        SessionEnded
            Waiting for an activity of a session that ended.
        """
        sid = self.resolve(ref).id
        deadline = None if timeout is None else time.monotonic() + timeout
        tick = 0
        while True:
            record = self.store.get(sid)
            if until == "exited":
                if record.status.ended:
                    return Observed(record)
                if tick % 8 == 7:
                    looked = self.observe([record])[0]
                    if looked.session.status.ended or (
                        looked.pane is None and not looked.unreachable
                    ):
                        return looked
            else:
                looked = self._watch(record)
                if looked.session.status.ended or looked.pane is None or looked.pane.pane_dead:
                    raise exc.SessionEnded(sid, looked.session.status.value)
                if looked.activity is not None and looked.activity.value == until:
                    return looked
            if deadline is not None and time.monotonic() >= deadline:
                return None
            tick += 1
            pause = interval if deadline is None else min(interval, deadline - time.monotonic())
            time.sleep(max(0.0, pause))

    def _watch(self, record: Session) -> Observed:
        """Observe one live session and its activity with one tmux process."""
        if record.pane_id is None or record.status.ended:
            return Observed(record, looked=True)
        backend = self.backend_for(record)
        profile = self._profile_for_looking(record)
        lines = WAITING_LINES if profile is not None and profile.waiting else 0
        pane, screen = backend.pane_snapshot(record.pane_id, lines)
        if pane is None or rec.owner_of(pane, self.store.store_id) != record.id:
            return self.observe([record])[0]
        if pane.pane_dead:
            effects = self._effects(backend, lambda: {pane.session_name: pane})
            settled = rec.settle(record, pane, effects, self._facts_for(record, pane), self.grace)
            return Observed(settled, pane, True)
        waiting = (
            screen is not None and profile is not None and profile.is_waiting(screen.split("\n"))
        )
        found = rec.derive_activity(
            record, pane, time.time(), waiting, self._working_seconds(record)
        )
        return Observed(record, pane, True, *(found or (None, None)))

    # --- terminal ------------------------------------------------------------------

    def _live_pane(self, ref: str, need_alive: bool) -> tuple[Observed, LivePane]:
        looked = self.look(ref)
        if looked.unreachable:
            raise exc.TmuxUnavailable(looked.unreachable)
        pane = looked.pane
        if pane is None:
            raise exc.SessionEnded(looked.session.id, looked.session.status.value)
        if need_alive and pane.pane_dead:
            raise exc.SessionEnded(looked.session.id, looked.session.status.value)
        return looked, pane

    def logs(self, ref: str, lines: int | None = None, raw: bool = False) -> str:
        """Return what a session's agent printed: its kept log, else its pane."""
        session = self.resolve(ref)
        text = logfile.read(self.store.log_path(session.id), lines, raw)
        if text is not None:
            return text
        _looked, pane = self._live_pane(ref, need_alive=False)
        return self.backend_for(session).capture(pane.pane_id, lines)

    def follow(
        self,
        ref: str,
        emit: Callable[[str], None],
        lines: int | None = None,
        raw: bool = False,
        interval: float = 0.2,
    ) -> Session:
        """Print a session's log, then what it adds, until the session has ended."""
        sid = self.resolve(ref).id

        def ended() -> bool:
            record = self.store.get(sid)
            if record.status.ended:
                return True
            looked = self.observe([record])[0]
            return looked.session.status.ended or (looked.pane is None and not looked.unreachable)

        logfile.follow(
            self.store.log_path(sid), emit, lines=lines, raw=raw, ended=ended, interval=interval
        )
        return self.store.get(sid)

    def send(
        self, ref: str, text: str, enter: bool = True, settle: float = DEFAULT_SEND_SETTLE
    ) -> Session:
        """Paste ``text`` into a live agent's pane, then press Enter after ``settle`` s.

        The text travels on tmux's stdin, never its argv; apps that asked for bracketed
        paste get it whole, so a multi-line prompt is one message.
        """
        looked, pane = self._live_pane(ref, need_alive=True)
        backend = self.backend_for(looked.session)
        if text:
            backend.paste(pane.pane_id, text)
        if enter:
            if text and settle > 0:
                time.sleep(settle)  # TUIs drop an Enter that arrives with the paste
            backend.press_enter(pane.pane_id)
        return looked.session

    def attach(self, ref: str, environ: Mapping[str, str], how: str = "popup") -> list[str] | None:
        """Return the command that attaches this terminal, or show the session and return None.

        Inside tmux on the same server the client is switched; inside another tmux the
        session opens there (``how``: ``popup`` or ``window``).
        """
        looked, pane = self._live_pane(ref, need_alive=False)
        backend = self.backend_for(looked.session)
        target = exact_session(pane.session_name)
        inside = socket_of_tmux_env(environ.get("TMUX"))
        if inside is None:
            return backend.attach_argv(target)
        if os.path.realpath(inside) == os.path.realpath(backend.socket_path):
            backend.switch_client(pane.session_id)
            return None
        outer = TmuxBackend(inside, self.tmux_bin, self.tmux_timeout)
        outer.open_attached(how, backend.socket_path, target, backend.tmux_bin)
        return None

    # --- hooks tmux runs -----------------------------------------------------------

    def settle_pane(self, pane_id: str, tries: int = 20, interval: float = 0.1) -> Session | None:
        """Record the exit of the agent in ``pane_id`` (the pane-died hook's work).

        Only a session this store owns is touched. tmux may run the hook a moment before
        it has reaped the agent, so the exit status is waited for, briefly.
        """
        if _PANE_ID.fullmatch(pane_id) is None:
            raise exc.UsageError(f"not a pane id: {pane_id[:20]!r}")
        facts = self.backend.pane_facts(pane_id, "@amux_id", STORE_OPTION, "session_name")
        if facts is None:
            return None
        sid, store_id, name = facts
        if not is_valid_id(sid) or name != tmux_session_name(sid):
            return None
        if store_id != self.store.store_id:
            return None
        record = self.store.get(sid)
        for _ in range(tries):
            # Read again each time: a start still holding the lock writes 'running' later.
            looked = self.observe([self.store.get(sid)])[0]
            record = looked.session
            if record.status.ended or looked.pane is None or not looked.pane.pane_dead:
                return record
            time.sleep(interval)
        return record

    # --- reconcile -----------------------------------------------------------------

    def _sweep_handoffs(self) -> None:
        """Remove the launch FIFOs of starts that were killed half way.

        A start holds its record's lock from before it makes them until it removes
        them: a lock that can be taken at once means nobody will use them again.
        """
        for stem, paths in launch.Handoff.leftovers(self.store.runtime_dir()).items():
            sid = stem.rpartition("-")[0]
            if not is_valid_id(sid):
                continue
            with contextlib.suppress(exc.LockTimeout), self.store.lock(sid, 0):
                for path in paths:
                    with contextlib.suppress(OSError):  # gone, or not ours to remove (a dir)
                        path.unlink()

    def reconcile(
        self, policy: rec.Policy, dry_run: bool = False, lock_timeout: float = 0.0
    ) -> ReconcileReport:
        """Plan (and unless ``dry_run``, apply) what makes records and tmux agree.

        Visits this manager's socket and every socket a record names. A server that
        cannot be asked leaves its records as they are (reported in ``unreachable``).
        A store that does not exist yet owns nothing: nothing is created or touched.

        Raises
        ------
        LockTimeout
            Another reconcile holds the lock (callers treat this as "busy").
        """
        store_id = self.store.store_id
        if store_id is None:
            return ReconcileReport([], [], dry_run, 0)
        guard = (
            contextlib.nullcontext()
            if dry_run
            else self.store.store_lock(RECONCILE_LOCK, lock_timeout)
        )
        calls_before = sum(b.calls for b in self._backends.values())
        with guard:
            if not dry_run:
                self._sweep_handoffs()
            pending = _in_background(self.backend.list_live)
            listing = self.store.list(Query())
            by_socket: dict[str, list[Session]] = {self.backend.socket_path: []}
            for record in listing.sessions:
                by_socket.setdefault(self.backend_for(record).socket_path, []).append(record)
            unreadable = {p.session_id for p in listing.problems if p.session_id}
            every_id = {r.id for r in listing.sessions}
            actions: list[rec.Action] = []
            outcomes: list[rec.Outcome] = []
            unreachable: dict[str, str] = {}
            foreign = 0
            for path, records in by_socket.items():
                backend = self.backend_at(path)
                try:
                    live = pending() if backend is self.backend else backend.list_live()
                    if live.no_server:
                        _check_no_agent_alive(path, records)
                    panes = _with_zombie_exits(backend, live)
                except (exc.TmuxUnavailable, exc.TmuxCommandFailed) as err:
                    unreachable[path] = str(err)
                    continue
                foreign += sum(1 for p in panes.values() if rec.owner_of(p, store_id) is None)
                facts = {r.pid: procs.facts(r.pid) for r in records if r.pid is not None}
                now = dt.datetime.now(dt.UTC)
                planned = rec.plan(
                    records,
                    panes,
                    now,
                    policy,
                    store_id=store_id,
                    # A session whose record names its server by another path is not
                    # ownerless: it is judged with its record, or not at all.
                    protected=unreadable | (every_id - {r.id for r in records}),
                    facts=facts,
                )
                actions += planned
                if not dry_run and planned:
                    outcomes += rec.apply(
                        planned, self._effects(backend, _relister(self, backend, records)), policy
                    )
            calls = sum(b.calls for b in self._backends.values()) - calls_before
            return ReconcileReport(
                actions, outcomes, dry_run, calls, listing.problems, unreachable, foreign
            )


def open_manager(
    root: Path, socket: str = DEFAULT_SOCKET, environ: Mapping[str, str] | None = None
) -> Manager:
    """Return the manager of the file store at ``root`` (``root/.amux``), reading the
    user's own profiles from where ``environ`` says (XDG; none when ``environ`` is None)."""
    return Manager(FileStore(root), socket=socket, environ=environ)


# What the command line needs from the layers below, so it imports only this module.
DEFAULT_GRACE = rec.DEFAULT_GRACE
Kind = rec.Kind
Policy = rec.Policy
__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_SOCKET",
    "Kind",
    "Manager",
    "Policy",
    "Query",
    "Redactor",
    "StartSpec",
    "open_manager",
    "without_gc",
]


# --- helpers -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Prepared:
    """A launch, checked and ready: real argv and environment, and their masked twins."""

    argv: tuple[str, ...]
    exe: str
    cwd: str
    agent_env: dict[str, str]
    masked_command: tuple[str, ...]
    masked_environment: dict[str, str]
    masked_env: tuple[str, ...]
    masked_args: tuple[int, ...]
    redact: Redactor
    agent_id: str | None
    workspace_id: str | None


def _same_socket(path: str) -> str:
    """Return ``path`` with its directory resolved (one key per server socket)."""
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def resolve_command(name: str, path: str, cwd: str) -> str:
    """Return the executable ``name`` runs, searched as ``execvp`` would from ``cwd``.

    Raises
    ------
    UsageError
        Not found, or not executable (exit 2, naming it).
    """
    if "/" in name:
        candidate = os.path.join(cwd, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
        why = "is not executable" if os.path.exists(candidate) else "does not exist"
        raise exc.UsageError(f"command {name[:80]!r} {why}")
    for entry in path.split(os.pathsep):
        candidate = os.path.join(cwd, entry or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    raise exc.UsageError(f"command {name[:80]!r} not found in PATH")


def _start_timed_out(session: Session) -> bool:
    if session.status not in (Status.CREATED, Status.STARTING):
        return False
    from amux_tmux.model import parse_time

    return (
        dt.datetime.now(dt.UTC) - parse_time(session.updated_at)
    ).total_seconds() > START_TIMEOUT


def _check_no_agent_alive(socket_path: str, records: Sequence[Session]) -> None:
    """Refuse to take "no server" for an empty server while a recorded agent runs there."""
    for record in records:
        if record.pid is None or record.status.ended:
            continue
        facts = procs.facts(record.pid)
        if rec.is_alive(record, facts):
            server = procs.parent_of(record.pid)
            hint = f" (kill -USR1 {server} makes tmux recreate it)" if server else ""
            raise exc.TmuxQueryFailed(
                "list-panes",
                f"no server answers on {socket_path}, but agent pid {record.pid} of session "
                f"{record.id} runs: the socket file may have been removed{hint}",
            )


def _relister(
    manager: Manager, backend: TmuxBackend, records: Sequence[Session]
) -> Callable[[], dict[str, LivePane]]:
    return lambda: manager._listing(backend, records)


def _hung_up(known: tuple[int | None, int | None]) -> bool:
    """Whether an exit was by SIGHUP (or a shell's report of it, status 129)."""
    code, sig = known
    return sig == signal.SIGHUP or code == 128 + signal.SIGHUP


def _with_zombie_exits(backend: TmuxBackend, live: Live) -> dict[str, LivePane]:
    """Fill in exits tmux saw but has not reaped, and make tmux reap them.

    tmux 3.3a sometimes misses an agent's SIGCHLD: the pane is dead, the agent a zombie
    for minutes, and tmux neither knows the status, shows "Pane is dead" nor runs the
    pane-died hook. The status is in /proc; a short-lived child of the server (a fixed
    ``run-shell -b true``) makes tmux reap every exited child, this one included.
    """
    panes = dict(live.panes)
    unreaped = False
    for name, pane in panes.items():
        if pane.pane_dead and pane.pane_dead_status is None and pane.pane_dead_signal is None:
            known = procs.zombie_exit(pane.pane_pid) if pane.pane_pid else None
            if known is not None:
                unreaped = True
                panes[name] = dataclasses.replace(
                    pane, pane_dead_status=known[0], pane_dead_signal=known[1]
                )
    if unreaped:
        with contextlib.suppress(exc.AmuxError):
            backend.cmd("run-shell", "-b", "true")
    return panes


def _remove_log(path: Path) -> None:
    for candidate in (path, path.with_name(path.name + ".1")):
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()


T = TypeVar("T")


def _in_background(work: Callable[[], T]) -> Callable[[], T]:
    """Start ``work`` in a thread; return a function that waits for its result."""
    box: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            box.append(work())
        except BaseException as err:  # re-raised in the caller's thread
            errors.append(err)

    thread = threading.Thread(target=run, name="amux-tmux-list", daemon=True)
    thread.start()

    def result() -> T:
        thread.join()
        if errors:
            raise errors[0]
        return box[0]

    return result


class _Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived during a start: unwind, so nothing is left behind."""


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into an exception while a start creates things."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_(signum: int, frame: object) -> None:
        raise _Interrupted(signum)

    saved = {sig: signal.signal(sig, raise_) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
