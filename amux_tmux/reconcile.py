"""Match records against live tmux sessions and fix orphans in both directions.

:func:`plan` is pure: records, one listing of live panes, the time and the options in,
a list of :class:`Action` out. :func:`apply` is the only place with side effects; it
performs each action under the record's lock after judging that record again against
a fresh listing, because the world may have changed since the plan was made.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
from collections.abc import Callable, Iterable, Mapping, Sequence

from amux_tmux import exc
from amux_tmux.model import (
    SESSION_PREFIX,
    LivePane,
    Session,
    Status,
    is_valid_id,
    parse_time,
    utcnow,
)

DEFAULT_GRACE = 30.0
#: tmux's session_created is whole seconds; a start is recorded within this of it.
CREATED_SLACK = 5.0
#: psutil's create_time and the recorded one are the same float; allow for rounding.
PID_TIME_SLACK = 1.0


class Kind(enum.StrEnum):
    """What an action does."""

    MARK_ORPHANED = "mark-orphaned"
    MARK_COMPLETED = "mark-completed"
    MARK_FAILED = "mark-failed"
    MARK_STOPPED = "mark-stopped"
    REMOVE_RECORD = "remove-record"
    TAG_SESSION = "tag-session"
    KILL_SESSION = "kill-session"

    def __str__(self) -> str:
        return self.value


MARK_STATUS = {
    Kind.MARK_ORPHANED: Status.ORPHANED,
    Kind.MARK_COMPLETED: Status.COMPLETED,
    Kind.MARK_FAILED: Status.FAILED,
    Kind.MARK_STOPPED: Status.STOPPED,
}


@dataclasses.dataclass(frozen=True, slots=True)
class Action:
    """One planned change, with the reason a person reading cron mail would need."""

    kind: Kind
    session_id: str
    reason: str
    tmux_session: str | None = None
    tmux_session_id: str | None = None
    exit_code: int | None = None

    def to_dict(self) -> dict[str, object]:
        """Return plain data for ``--json``."""
        return {
            "action": self.kind.value,
            "id": self.session_id,
            "tmux_session": self.tmux_session,
            "tmux_session_id": self.tmux_session_id,
            "reason": self.reason,
            "exit_code": self.exit_code,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one action."""

    action: Action
    done: bool
    detail: str = ""

    def to_dict(self) -> dict[str, object]:
        """Return plain data for ``--json``."""
        data = self.action.to_dict()
        data["result"] = "done" if self.done else ("skipped" if not self.detail else "failed")
        if self.detail:
            data["detail"] = self.detail
        return data


@dataclasses.dataclass(frozen=True, slots=True)
class Policy:
    """How :func:`plan` acts: mark or remove, and how young is too young to touch."""

    remove: bool = False
    grace: float = DEFAULT_GRACE
    #: A dead pane is proof, not a guess: commands that look at a session record its
    #: exit at once, while the reconciler (``False``) leaves anything young alone.
    exits_skip_grace: bool = False


_UNSTARTED = frozenset({Status.CREATED, Status.STARTING})


def owner_of(pane: LivePane) -> str | None:
    """Return the amux id owning a live session, or None if amux does not own it.

    Owned means: the ``@amux_id`` tag is set, is a valid id, and the session is named
    ``amux-<that id>``. A session named ``amux-...`` without the tag is a user's.
    """
    owner = pane.owner_id
    if owner and is_valid_id(owner) and pane.session_name == SESSION_PREFIX + owner:
        return owner
    return None


def judge(
    record: Session,
    pane: LivePane | None,
    now: dt.datetime,
    policy: Policy,
    pid_create_time: float | None = None,
) -> list[Action]:
    """Return what should happen to one record given its live pane (or None).

    ``pane`` must already be the one owned by this record (see :func:`match`);
    ``pid_create_time`` is the current create time of the recorded pid, if known.
    """
    status = record.status
    if status.ended:
        return []
    name = record.tmux_session

    def act(kind: Kind, reason: str, code: int | None = None) -> Action:
        return Action(
            kind, record.id, reason, name, pane.session_id if pane else None, exit_code=code
        )

    young = (now - parse_time(record.updated_at)).total_seconds() < policy.grace
    exited = pane is not None and pane.pane_dead and status not in _UNSTARTED
    if young and not (exited and policy.exits_skip_grace):
        return []  # e.g. a start between writing its record and creating the session

    if status in _UNSTARTED:
        actions = []
        if pane is not None and policy.remove:
            # Killed before the mark: the kill re-checks that the start is still unfinished.
            actions.append(act(Kind.KILL_SESSION, "session of a start that never finished"))
        actions.append(act(Kind.MARK_FAILED, f"{status.value} for longer than the grace period"))
        return actions
    if pane is None:
        if status is Status.STOPPING:
            return [act(Kind.MARK_STOPPED, "stop was interrupted after its session ended")]
        if policy.remove:
            return [act(Kind.REMOVE_RECORD, "tmux session is gone")]
        if status is Status.ORPHANED:
            return []
        return [act(Kind.MARK_ORPHANED, "tmux session is gone")]
    if exited:
        code, signal = pane.pane_dead_status, pane.pane_dead_signal
        if code == 0:
            return [act(Kind.MARK_COMPLETED, "agent exited with status 0", 0)]
        if code is not None:
            return [act(Kind.MARK_FAILED, f"agent exited with status {code}", code)]
        if signal is not None:
            return [act(Kind.MARK_FAILED, f"agent was killed by signal {signal}")]
        if pane.pane_dead_time is None and _same_process(record, pid_create_time):
            # tmux marks a pane dead when its pty closes, a moment before it reaps the
            # agent and learns how it ended; the next look will know.
            return []
        return [act(Kind.MARK_FAILED, "agent ended; tmux did not report how")]
    stale = _not_our_process(record, pane, pid_create_time)
    if stale:
        if policy.remove:
            return [act(Kind.REMOVE_RECORD, stale)]
        return [] if status is Status.ORPHANED else [act(Kind.MARK_ORPHANED, stale)]
    return []


def _same_process(record: Session, pid_create_time: float | None) -> bool:
    """Whether the recorded pid still names the process this record started."""
    return pid_create_time is not None and not _pid_reused(record, pid_create_time)


def _pid_reused(record: Session, pid_create_time: float | None) -> bool:
    """Whether the recorded pid now names a process started at another time."""
    return (
        record.pid_create_time is not None
        and pid_create_time is not None
        and abs(pid_create_time - record.pid_create_time) > PID_TIME_SLACK
    )


def _not_our_process(record: Session, pane: LivePane, pid_create_time: float | None) -> str:
    """Return why the live pane is not the process this record started ('' if it is)."""
    if record.pid is not None and pane.pane_pid is not None and pane.pane_pid != record.pid:
        return f"pane runs pid {pane.pane_pid}, not the recorded pid {record.pid}"
    if _pid_reused(record, pid_create_time):
        return f"pid {record.pid} was reused by another process"
    return ""


def match(records: Iterable[Session], live: Mapping[str, LivePane]) -> dict[str, LivePane]:
    """Return ``{record id: its live pane}`` for records whose owned session is live."""
    matched: dict[str, LivePane] = {}
    for record in records:
        pane = live.get(record.tmux_session) if record.tmux_session else None
        if pane is not None and owner_of(pane) == record.id:
            matched[record.id] = pane
    return matched


def judge_session(
    pane: LivePane, known_ids: Iterable[str] | set[str], now: dt.datetime, policy: Policy
) -> list[Action]:
    """Return what should happen to one live session (direction 2: no record)."""
    owner = owner_of(pane)
    if owner is None or owner in known_ids:
        return []
    if now.timestamp() - pane.session_created < policy.grace:
        return []
    if policy.remove:
        return [Action(Kind.KILL_SESSION, owner, "no record", pane.session_name, pane.session_id)]
    if pane.orphan_tag:
        return []
    return [Action(Kind.TAG_SESSION, owner, "no record", pane.session_name, pane.session_id)]


def plan(
    records: Sequence[Session],
    live: Mapping[str, LivePane],
    now: dt.datetime,
    policy: Policy,
    pid_create_times: Mapping[int, float | None] | None = None,
) -> list[Action]:
    """Return every action needed to make records and live sessions agree.

    Pure: no I/O. ``live`` maps session name to its first pane, as one listing saw it;
    ``pid_create_times`` maps a pid to its current create time (None: no such process).
    """
    times = pid_create_times or {}
    matched = match(records, live)
    actions: list[Action] = []
    for record in records:
        pane = matched.get(record.id)
        ctime = times.get(record.pid) if record.pid is not None else None
        actions.extend(judge(record, pane, now, policy, ctime))
    # A record this plan removes no longer owns its session, which would otherwise be
    # found ownerless (and killed) only by the next run.
    removed = {a.session_id for a in actions if a.kind is Kind.REMOVE_RECORD}
    known = {record.id for record in records} - removed
    for pane in live.values():
        actions.extend(judge_session(pane, known, now, policy))
    return actions


# --- side effects --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Effects:
    """The side effects :func:`apply` needs; the manager provides real ones."""

    list_live: Callable[[], Mapping[str, LivePane]]
    update: Callable[[str, Callable[[Session], Session]], Session]
    delete: Callable[[str, Callable[[Session], None]], Session]
    get: Callable[[str], Session]
    lock: Callable[[str], contextlib.AbstractContextManager[None]]
    kill: Callable[[str], bool]
    tag: Callable[[str], None]
    pid_create_time: Callable[[int], float | None]


class _Changed(Exception):
    """The record no longer calls for the planned action."""


def apply(actions: Sequence[Action], effects: Effects, policy: Policy) -> list[Outcome]:
    """Perform ``actions``, each under its record's lock after a fresh re-judgement.

    One failing action does not stop the others; its :class:`Outcome` says why.
    """
    if not actions:
        return []
    fresh = effects.list_live()
    outcomes: list[Outcome] = []
    for action in actions:
        try:
            done, detail = _apply_one(action, effects, policy, fresh)
        except _Changed:
            outcomes.append(Outcome(action, False, ""))
            continue
        except (exc.AmuxError, OSError) as err:
            # One failure must not stop the others; the OSError arm is for effects that
            # did not translate theirs.
            outcomes.append(Outcome(action, False, str(err)))
            continue
        outcomes.append(Outcome(action, done, detail))
    return outcomes


def _still_planned(
    action: Action,
    record: Session,
    fresh: Mapping[str, LivePane],
    effects: Effects,
    policy: Policy,
) -> None:
    pane = match([record], fresh).get(record.id)
    ctime = effects.pid_create_time(record.pid) if record.pid is not None and pane else None
    now = dt.datetime.now(dt.UTC)
    if action not in judge(record, pane, now, policy, ctime):
        raise _Changed


def _apply_one(
    action: Action, effects: Effects, policy: Policy, fresh: Mapping[str, LivePane]
) -> tuple[bool, str]:
    sid = action.session_id
    if action.kind in MARK_STATUS:
        target = MARK_STATUS[action.kind]

        def mark(record: Session) -> Session:
            _still_planned(action, record, fresh, effects, policy)
            changes: dict[str, object] = {"error": None} if target is not Status.FAILED else {}
            if action.exit_code is not None:
                changes["exit_code"] = action.exit_code
            if target is Status.FAILED and action.exit_code is None:
                changes["error"] = action.reason
            if target.ended:
                changes["stopped_at"] = utcnow()
            return record.transition(target, **changes)

        effects.update(sid, mark)
        return True, ""
    if action.kind is Kind.REMOVE_RECORD:
        effects.delete(sid, lambda record: _still_planned(action, record, fresh, effects, policy))
        return True, ""
    # Session actions: hold the owner id's lock so a start finishing right now, which
    # holds it from writing the record to creating the session, is waited for.
    with effects.lock(sid):
        if action.kind is Kind.KILL_SESSION and action.tmux_session_id is None:
            return False, "no session id"
        try:
            record = effects.get(sid)
        except exc.SessionNotFound:
            record = None
        pane = fresh.get(action.tmux_session or "")
        if pane is None or pane.session_id != action.tmux_session_id:
            raise _Changed
        if record is not None and not (
            action.kind is Kind.KILL_SESSION and record.status in (Status.CREATED, Status.STARTING)
        ):
            raise _Changed  # it has a record now; it is no orphan
        assert action.tmux_session_id is not None
        if action.kind is Kind.KILL_SESSION:
            return effects.kill(action.tmux_session_id), ""
        effects.tag(action.tmux_session_id)
        return True, ""
