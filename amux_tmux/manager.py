"""Session lifecycle: start, look, stop, remove, attach, logs, send, reconcile.

Each step that changes a record is a read-modify-write under the record's lock, and a
tmux change that goes with it happens while that lock is held. Whenever a command
looks at a live session it records what it saw (an exited agent becomes ``completed``
or ``failed``), with the same judgement the reconciler uses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import json
import os
import re
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from amux_tmux import exc, launch
from amux_tmux import reconcile as rec
from amux_tmux.model import (
    LivePane,
    Session,
    Status,
    parse_time,
    tmux_session_name,
    utcnow,
    validate_name,
)
from amux_tmux.procs import create_time, zombie_exit
from amux_tmux.secrets import Redactor, mask_environment, split_environment
from amux_tmux.store import FileStore, Problem, Query
from amux_tmux.tmux import (
    DEFAULT_SOCKET,
    DEFAULT_TIMEOUT,
    Spawned,
    TmuxBackend,
    exact_session,
    socket_of_tmux_env,
)

ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: How long a ``starting`` record may stay so before every command treats it as failed.
START_TIMEOUT = 60.0
SECRET_HANDOFF_TIMEOUT = 10.0
DEFAULT_STOP_TIMEOUT = 5.0
RECONCILE_LOCK = "reconcile"


@dataclasses.dataclass(frozen=True, slots=True)
class StartSpec:
    """What ``start`` needs to know; ``environment`` holds real (unmasked) values."""

    command: Sequence[str]
    name: str | None = None
    agent_id: str | None = None
    workspace_id: str | None = None
    cwd: str | None = None
    environment: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class Observed:
    """A record together with its live pane, when tmux was asked."""

    session: Session
    pane: LivePane | None = None
    looked: bool = False

    @property
    def state(self) -> str:
        """``alive``, ``exited``, ``gone`` or ``-`` (tmux not asked)."""
        if not self.looked:
            return "-"
        if self.pane is None:
            return "gone"
        return "exited" if self.pane.pane_dead else "alive"


@dataclasses.dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What a reconcile run planned and, unless it was a dry run, what it did."""

    actions: list[rec.Action]
    outcomes: list[rec.Outcome]
    dry_run: bool
    tmux_calls: int

    @property
    def failed(self) -> list[rec.Outcome]:
        """Outcomes of actions that were attempted and failed."""
        return [o for o in self.outcomes if not o.done and o.detail]


class Manager:
    """Runs agent sessions in tmux and keeps their records true.

    Parameters
    ----------
    store : FileStore
        Where records live.
    socket : str
        tmux socket name or path for new sessions and for ``reconcile``; existing
        sessions are always reached through the socket path in their record.
    tmux_bin : str, optional
        tmux binary (default: from ``PATH``).
    tmux_timeout : float
        Seconds any one tmux call may take.
    grace : float
        Seconds a record must be left alone after its last change before an absent
        tmux session counts against it.
    """

    def __init__(
        self,
        store: FileStore,
        socket: str = DEFAULT_SOCKET,
        tmux_bin: str | None = None,
        tmux_timeout: float = DEFAULT_TIMEOUT,
        grace: float = rec.DEFAULT_GRACE,
    ) -> None:
        self.store = store
        self.tmux_bin = tmux_bin
        self.tmux_timeout = tmux_timeout
        self.backend = TmuxBackend(socket, tmux_bin, tmux_timeout)
        self.grace = grace
        self._backends: dict[str, TmuxBackend] = {self.backend.socket_path: self.backend}
        #: Bad record files met by the last ``list``.
        self.problems: list[Problem] = []

    def backend_for(self, session: Session) -> TmuxBackend:
        """Return the backend for the server a record's session was started on."""
        path = session.tmux_socket or self.backend.socket_path
        if path not in self._backends:
            self._backends[path] = TmuxBackend(path, self.tmux_bin, self.tmux_timeout)
        return self._backends[path]

    # --- start ---------------------------------------------------------------------

    def start(self, spec: StartSpec) -> Session:
        """Create a record and its tmux session; return the ``running`` record.

        Raises
        ------
        UsageError
            Bad command, cwd, name or environment; nothing was written.
        TmuxUnavailable
            tmux missing or too old; nothing was written.
        SessionStartFailed
            tmux refused; the record is kept as ``failed`` with the reason.
        """
        command = list(spec.command)
        if not command or not command[0]:
            raise exc.UsageError("no command given; put the agent command after '--'")
        cwd = os.path.abspath(spec.cwd or os.getcwd())
        if not os.path.isdir(cwd):
            raise exc.UsageError(f"working directory {cwd} does not exist")
        if spec.name is not None:
            validate_name(spec.name)
        for key in spec.environment:
            if ENV_NAME_RE.fullmatch(key) is None:
                raise exc.UsageError(f"invalid environment variable name {key[:40]!r}")
        self.backend.check_version()
        public, secret = split_environment(spec.environment)
        redact = Redactor(secret.values())
        now = utcnow()
        sid = self.store.new_id()
        record = Session(
            id=sid,
            status=Status.STARTING,
            created_at=now,
            updated_at=now,
            name=spec.name,
            agent_id=spec.agent_id,
            workspace_id=spec.workspace_id,
            tmux_socket=self.backend.socket_path,
            tmux_session=tmux_session_name(sid),
            command=tuple(command),
            cwd=cwd,
            environment=mask_environment(spec.environment),
        )
        with contextlib.ExitStack() as stack:
            if spec.name is not None:
                # Held until the record exists, so two starts cannot both take a name.
                stack.enter_context(self.store.store_lock("names", self.store.lock_timeout))
                self._check_name_free(spec.name)
            stack.enter_context(self.store.lock(sid))
            self.store.create(record)
            try:
                spawned = self._spawn(sid, command, cwd, public, secret)
            except exc.AmuxError as err:
                why = redact(str(err))
                self._mark_start_failed(sid, why)
                raise exc.SessionStartFailed(sid, why) from None
            except BaseException:
                self._mark_start_failed(sid, "start was interrupted")
                raise
            ctime = create_time(spawned.pane_pid)
            return self.store.update(
                sid,
                lambda s: s.transition(
                    Status.RUNNING,
                    tmux_socket=spawned.socket_path or s.tmux_socket,
                    tmux_session=spawned.session_name,
                    tmux_session_id=spawned.session_id,
                    pane_id=spawned.pane_id,
                    pid=spawned.pane_pid,
                    pid_create_time=ctime,
                    started_at=utcnow(),
                ),
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_name_free(self, name: str) -> None:
        for other in self.store.list(Query(include_ended=False)).sessions:
            if other.name == name:
                raise exc.NameInUse(name, other.id)

    def _mark_start_failed(
        self, sid: str, why: str, only_if: Callable[[Session], bool] | None = None
    ) -> None:
        """Record a start as failed; ``only_if`` re-checks the record under its lock."""

        def fail(s: Session) -> Session:
            if only_if is not None and not only_if(s):
                return s  # the start finished meanwhile
            return s.transition(Status.FAILED, error=why, stopped_at=utcnow())

        with contextlib.suppress(exc.AmuxError):
            self.store.update(sid, fail)

    def _spawn(
        self,
        sid: str,
        command: list[str],
        cwd: str,
        public: Mapping[str, str],
        secret: Mapping[str, str],
    ) -> Spawned:
        # The launcher runs by file path in isolated mode: it needs only the standard
        # library, whatever sys.path the pane's cwd would give.
        argv = [sys.executable, "-I", "-S", str(Path(launch.__file__).resolve())]
        fifo: Path | None = None
        if secret:
            fifo = self.store.runtime_dir() / f"{sid}-{os.urandom(4).hex()}.fifo"
            os.mkfifo(fifo, 0o600)
            argv += ["--secrets", str(fifo)]
        argv += ["--", *command]
        try:
            spawned = self.backend.new_session(
                tmux_session_name(sid), sid, argv, cwd, {**public, "AMUX_SESSION_ID": sid}
            )
            if fifo is not None:
                try:
                    _hand_over(fifo, secret, SECRET_HANDOFF_TIMEOUT)
                except BaseException:
                    with contextlib.suppress(exc.AmuxError):
                        self.backend.kill_session(spawned.session_id)
                    raise
            return spawned
        finally:
            if fifo is not None:
                fifo.unlink(missing_ok=True)

    # --- looking -------------------------------------------------------------------

    def resolve(self, ref: str) -> Session:
        """Return the record a reference (id, prefix or name) points at."""
        return self.store.resolve(ref)

    def observe(self, sessions: Sequence[Session]) -> list[Observed]:
        """Ask tmux (one call per server) about ``sessions`` and record what changed."""
        by_socket: dict[str, Mapping[str, LivePane]] = {}
        result: list[Observed] = []
        for session in sessions:
            backend = self.backend_for(session)
            if backend.socket_path not in by_socket:
                by_socket[backend.socket_path] = _live(backend)
            live = by_socket[backend.socket_path]
            pane = rec.match([session], live).get(session.id)
            settled = self._settle(session, pane, live)
            result.append(Observed(settled, pane, looked=True))
        return result

    def look(self, ref: str) -> Observed:
        """Resolve ``ref`` and observe it."""
        return self.observe([self.resolve(ref)])[0]

    def _settle(
        self, session: Session, pane: LivePane | None, live: Mapping[str, LivePane]
    ) -> Session:
        policy = rec.Policy(remove=False, grace=self.grace, exits_skip_grace=True)
        now = dt.datetime.now(dt.UTC)
        ctime = create_time(session.pid) if pane and pane.pane_dead and session.pid else None
        judged = rec.judge(session, pane, now, policy, ctime)
        actions = [a for a in judged if a.kind in rec.MARK_STATUS]
        if not actions:
            return session
        outcomes = rec.apply(actions, self._effects(self.backend_for(session), live), policy)
        if any(o.done for o in outcomes):
            return self.store.get(session.id)
        return session

    def list(
        self,
        *,
        status: Collection[Status] | None = None,
        agent_id: str | None = None,
        workspace_id: str | None = None,
        include_ended: bool = False,
        limit: int | None = None,
        offset: int = 0,
        live: bool = False,
    ) -> list[Observed]:
        """Return records like ``docker ps``: ended ones only with ``include_ended``.

        Without ``live`` this reads the store alone. A ``starting`` record older
        than :data:`START_TIMEOUT` is recorded as failed either way.
        """
        query = Query(
            status=status,
            agent_id=agent_id,
            workspace_id=workspace_id,
            include_ended=include_ended,
        )
        listing = self.store.list(query)
        self.problems = listing.problems
        sessions = listing.sessions
        if any(self._start_timed_out(s) for s in sessions):
            for s in sessions:
                if self._start_timed_out(s):
                    self._mark_start_failed(
                        s.id, "start did not finish in time", only_if=self._start_timed_out
                    )
            sessions = self.store.list(query).sessions
        end = None if limit is None else offset + limit
        sessions = sessions[offset:end]
        if not live:
            return [Observed(s) for s in sessions]
        return self.observe(sessions)

    @staticmethod
    def _start_timed_out(session: Session) -> bool:
        if session.status not in (Status.CREATED, Status.STARTING):
            return False
        age = (dt.datetime.now(dt.UTC) - parse_time(session.updated_at)).total_seconds()
        return age > START_TIMEOUT

    # --- stop and remove -----------------------------------------------------------

    def stop(self, ref: str, timeout: float = DEFAULT_STOP_TIMEOUT) -> Session:
        """Stop a session from any state: TERM the agent, kill its tmux session.

        The agent gets ``timeout`` seconds to exit on SIGTERM before the session is
        killed (tmux then sends SIGHUP). An exit status tmux saw is kept.
        """
        sid = self.resolve(ref).id
        with self.store.lock(sid):
            looked = self.observe([self.store.get(sid)])[0]
            session, pane = looked.session, looked.pane
            backend = self.backend_for(session)
            if pane is not None and not pane.pane_dead:
                if not session.status.ended and session.status is not Status.STOPPING:
                    session = self.store.update(sid, lambda s: s.transition(Status.STOPPING))
                if timeout > 0 and session.pid is not None:
                    _terminate(session.pid, session.pid_create_time, timeout)
                    pane = rec.match([session], _live(backend)).get(sid) or pane
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

    def remove(self, ref: str, force: bool = False) -> Session:
        """Delete a record (and its tmux session); a live one only with ``force``."""
        sid = self.resolve(ref).id
        with self.store.lock(sid):
            session = self.store.get(sid)
            try:
                live = _live(self.backend_for(session))
            except exc.TmuxUnavailable:
                if not force:
                    raise
                live = {}
            pane = rec.match([session], live).get(sid)
            if pane is not None:
                if not pane.pane_dead and not force:
                    raise exc.SessionIsLive(sid)
                self.backend_for(session).kill_session(pane.session_id)
            return self.store.delete(sid)

    # --- terminal ------------------------------------------------------------------

    def _live_pane(self, ref: str, need_alive: bool) -> tuple[Observed, LivePane]:
        looked = self.look(ref)
        pane = looked.pane
        if pane is None:
            raise exc.AmuxError(
                f"session {looked.session.id} has no tmux session "
                f"(status {looked.session.status.value})"
            )
        if need_alive and pane.pane_dead:
            raise exc.AmuxError(
                f"session {looked.session.id} has exited (status {looked.session.status.value})"
            )
        return looked, pane

    def logs(self, ref: str, lines: int | None = None) -> str:
        """Return the text of a session's pane (its last ``lines`` lines, or all)."""
        looked, pane = self._live_pane(ref, need_alive=False)
        return self.backend_for(looked.session).capture(pane.pane_id, lines)

    def follow(
        self,
        ref: str,
        emit: Callable[[str], None],
        lines: int | None = None,
        interval: float = 0.25,
    ) -> Session:
        """Print a pane's text, then what it adds, until its agent exits."""
        looked, pane = self._live_pane(ref, need_alive=False)
        backend = self.backend_for(looked.session)
        seen: list[str] = []
        first = True
        while True:
            text = backend.capture(pane.pane_id)
            current = text.splitlines()
            if first:
                shown = current if lines is None else current[-lines:] if lines > 0 else []
                for line in shown:
                    emit(line)
                first = False
            else:
                for line in _new_lines(seen, current):
                    emit(line)
            seen = current
            if pane.pane_dead:
                record = self.store.get(looked.session.id)
                if record.status.ended:
                    return record
            time.sleep(interval)
            live = _live(backend)
            found = rec.match([looked.session], live).get(looked.session.id)
            if found is None:
                return self.store.get(looked.session.id)
            if found.pane_dead:
                self._settle(self.store.get(looked.session.id), found, live)
            pane = found

    def send(self, ref: str, text: str, enter: bool = True) -> Session:
        """Type ``text`` into a running agent's pane (then Enter unless told not to)."""
        looked, pane = self._live_pane(ref, need_alive=True)
        self.backend_for(looked.session).send_text(pane.pane_id, text, enter)
        return looked.session

    def attach(self, ref: str, environ: Mapping[str, str]) -> Sequence[str] | None:
        """Return the command that attaches to a session, or switch to it and return None.

        Inside tmux on the same server, ``attach-session`` refuses to nest, so the
        current client is switched instead; inside another server this raises.
        """
        looked, pane = self._live_pane(ref, need_alive=False)
        backend = self.backend_for(looked.session)
        target = exact_session(pane.session_name)
        argv = backend.attach_argv(target)
        inside = socket_of_tmux_env(environ.get("TMUX"))
        if inside is None:
            return argv
        if os.path.realpath(inside) == os.path.realpath(backend.socket_path):
            backend.switch_client(target)
            return None
        raise exc.AttachError(
            f"already inside tmux ({inside}); detach first, or run: TMUX= {shlex.join(argv)}"
        )

    # --- reconcile -----------------------------------------------------------------

    def reconcile(
        self, policy: rec.Policy, dry_run: bool = False, lock_timeout: float = 0.0
    ) -> ReconcileReport:
        """Plan (and unless ``dry_run``, apply) what makes records and tmux agree.

        Only records of this manager's socket are judged. A dry run takes no lock.

        Raises
        ------
        LockTimeout
            Another reconcile holds the lock (callers treat this as "busy").
        TmuxUnavailable
            tmux could not be queried; nothing was changed.
        """
        guard = (
            contextlib.nullcontext()
            if dry_run
            else self.store.store_lock(RECONCILE_LOCK, lock_timeout)
        )
        backend = self.backend
        calls_before = backend.calls
        with guard:
            # tmux answers in another process: read the records meanwhile. Either order
            # is sound, since the grace period and apply's re-check cover the gap.
            pending = _in_background(lambda: _live(backend))
            records = [
                r
                for r in self.store.list().sessions
                if r.tmux_socket in (None, backend.socket_path)
            ]
            live = pending()
            matched = rec.match(records, live)
            times = {
                r.pid: create_time(r.pid) for r in records if r.pid is not None and r.id in matched
            }
            now = dt.datetime.now(dt.UTC)
            actions = rec.plan(records, live, now, policy, times)
            calls = backend.calls - calls_before
            if dry_run or not actions:
                return ReconcileReport(actions, [], dry_run, calls)
            outcomes = rec.apply(actions, self._effects(backend, None), policy)
            return ReconcileReport(actions, outcomes, dry_run, calls)

    def _effects(
        self, backend: TmuxBackend, snapshot: Mapping[str, LivePane] | None
    ) -> rec.Effects:
        return rec.Effects(
            list_live=(lambda: snapshot) if snapshot is not None else lambda: _live(backend),
            update=self.store.update,
            delete=self.store.delete,
            get=self.store.get,
            lock=self.store.lock,
            kill=backend.kill_session,
            tag=backend.tag_orphan,
            pid_create_time=create_time,
        )


# --- helpers -------------------------------------------------------------------------


def _live(backend: TmuxBackend) -> dict[str, LivePane]:
    """List ``backend``'s sessions, with exits tmux saw but has not reaped filled in.

    tmux marks a pane dead when its pty closes, but learns how the agent ended only when
    it reaps it, and tmux 3.3a has been seen here to leave agents unreaped for minutes.
    """
    live = backend.list_live()
    for name, pane in live.items():
        if pane.pane_dead and pane.pane_dead_status is None and pane.pane_dead_signal is None:
            known = zombie_exit(pane.pane_pid) if pane.pane_pid else None
            if known is not None:
                live[name] = dataclasses.replace(
                    pane, pane_dead_status=known[0], pane_dead_signal=known[1]
                )
    return live


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


def _terminate(pid: int, create_time: float | None, timeout: float) -> None:
    """SIGTERM ``pid`` if it is still the process we started, and wait for it."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if create_time is not None and abs(proc.create_time() - create_time) > 1.0:
            return  # the pid now belongs to someone else
        proc.send_signal(signal.SIGTERM)
        # Not our child, so wait() cannot reap it: poll until it is gone or a zombie
        # (tmux, its parent, may be slow to reap or never do it).
        deadline = time.monotonic() + timeout
        delay = 0.002
        while proc.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
    except psutil.Error:
        pass  # gone; or kill-session follows and sends SIGHUP


def _hand_over(fifo: Path, secret: Mapping[str, str], timeout: float) -> None:
    """Write the secret environment into the FIFO once the launcher opens it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            break
        except OSError as err:
            # ENXIO: no reader yet. The launcher is a fresh interpreter; give it time.
            if err.errno != errno.ENXIO:
                raise exc.AmuxError(f"cannot hand secrets to the agent: {err.strerror}") from None
            if time.monotonic() > deadline:
                raise exc.AmuxError("the agent launcher did not start in time") from None
            time.sleep(0.002)
    try:
        os.set_blocking(fd, True)
        payload = json.dumps(dict(secret)).encode()
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _new_lines(before: list[str], after: list[str]) -> Iterator[str]:
    """Yield the lines of ``after`` that follow what ``before`` already showed."""
    if after[: len(before)] == before:
        yield from after[len(before) :]
        return
    # History scrolled or the screen was redrawn: resume after the last line we showed.
    for back in range(min(len(before), 20), 0, -1):
        tail = before[-back:]
        for i in range(len(after) - back, -1, -1):
            if after[i : i + back] == tail:
                yield from after[i + back :]
                return
    yield from after
