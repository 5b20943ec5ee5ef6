"""THE judgement of what is true: records against live tmux sessions, and what to do.

:func:`plan` is pure: records, one listing of one server, process facts, the time and
the options in, a list of :class:`Action` out. :func:`judge` (one record) and
:func:`derive_activity` are pure too; single-session commands use them through
:func:`settle`. :func:`apply` is the only place with side effects: it re-judges each
action under its record's lock against a fresh listing, because the world may have
changed since the plan was made, and sends every tmux change of a run to tmux at once.

Ownership: a live session belongs to this store only when it is named ``amux-<id>``,
tagged ``@amux_id=<id>`` and ``@amux_store=<this store's id>``. Everything else on the
server is foreign: never tagged, killed or marked. A record that cannot be read still
names its id, and its session is protected the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

from amux_tmux import exc
from amux_tmux.model import (
    SESSION_PREFIX,
    Activity,
    LivePane,
    ProcessFacts,
    Session,
    Status,
    is_valid_id,
    parse_time,
    utcnow,
)

DEFAULT_GRACE = 30.0
#: psutil's create_time and the recorded one are the same float; allow for rounding.
PID_TIME_SLACK = 1.0
#: Output this soon after an agent's own ``mark`` is part of what it marked (a redraw).
MARK_SLACK = 3.0
#: Output within this many seconds means an agent without a profile is working.
WORKING_SECONDS = 3.0
#: Record-tied tmux changes held under their locks in one batch; more go in chunks.
MAX_LOCKS_HELD = 200


class Kind(enum.StrEnum):
    """What an action does."""

    MARK_ORPHANED = "mark-orphaned"
    MARK_COMPLETED = "mark-completed"
    MARK_FAILED = "mark-failed"
    MARK_STOPPED = "mark-stopped"
    MARK_RUNNING = "mark-running"
    REMOVE_RECORD = "remove-record"
    TAG_SESSION = "tag-session"
    KILL_SESSION = "kill-session"
    #: Something a person should know and no rule may fix on its own.
    REPORT = "report"

    def __str__(self) -> str:
        return self.value


MARK_STATUS = {
    Kind.MARK_ORPHANED: Status.ORPHANED,
    Kind.MARK_COMPLETED: Status.COMPLETED,
    Kind.MARK_FAILED: Status.FAILED,
    Kind.MARK_STOPPED: Status.STOPPED,
    Kind.MARK_RUNNING: Status.RUNNING,
}
SESSION_KINDS = frozenset({Kind.TAG_SESSION, Kind.KILL_SESSION})


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
        if self.action.kind is Kind.REPORT:
            data["result"] = "reported"  # nothing is ever done for a report
        else:
            data["result"] = "done" if self.done else ("skipped" if not self.detail else "failed")
        if self.detail:
            data["detail"] = self.detail
        return data

    @property
    def failed(self) -> bool:
        """Attempted and failed (a skipped action has no detail)."""
        return not self.done and bool(self.detail)


@dataclasses.dataclass(frozen=True, slots=True)
class Policy:
    """How :func:`plan` acts: mark or remove, and how young is too young to touch."""

    remove: bool = False
    grace: float = DEFAULT_GRACE
    #: A dead pane is proof, not a guess: commands that look at a session record its
    #: exit at once, while the reconciler (``False``) leaves anything young alone.
    exits_skip_grace: bool = False


_UNSTARTED = frozenset({Status.CREATED, Status.STARTING})
_NO_FACTS = ProcessFacts(None)


def owner_of(pane: LivePane, store_id: str | None) -> str | None:
    """Return the record id owning a live session if THIS store owns it, else None.

    >>> p = LivePane("$1", "amux-abc", 0, "abc", False, "%1", 5, False, None, store_id="s1")
    >>> owner_of(p, "s1"), owner_of(p, "s2"), owner_of(p, None)
    ('abc', None, None)
    """
    owner = pane.owner_id
    if (
        store_id is not None
        and pane.store_id == store_id
        and owner
        and is_valid_id(owner)
        and pane.session_name == SESSION_PREFIX + owner
    ):
        return owner
    return None


def match(
    records: Iterable[Session], live: Mapping[str, LivePane], store_id: str | None
) -> dict[str, LivePane]:
    """Return ``{record id: its live pane}`` for records whose owned session is live.

    A record's session is ``amux-<id>``, the only name :func:`owner_of` accepts, whatever
    a hand edit left in its ``tmux_session``.
    """
    matched: dict[str, LivePane] = {}
    for record in records:
        pane = live.get(SESSION_PREFIX + record.id)
        if pane is not None and owner_of(pane, store_id) == record.id:
            matched[record.id] = pane
    return matched


def is_alive(record: Session, facts: ProcessFacts) -> bool:
    """Whether the recorded pid still runs the process this record started."""
    return (
        record.pid is not None
        and facts.create_time is not None
        and not facts.zombie
        and not pid_reused(record, facts)
    )


def pid_reused(record: Session, facts: ProcessFacts) -> bool:
    """Whether the recorded pid now names a process started at another time."""
    return (
        record.pid_create_time is not None
        and facts.create_time is not None
        and abs(facts.create_time - record.pid_create_time) > PID_TIME_SLACK
    )


def _not_our_process(record: Session, pane: LivePane, facts: ProcessFacts) -> str:
    """Return why the live pane is not the process this record started ('' if it is)."""
    if record.pid is not None and pane.pane_pid is not None and pane.pane_pid != record.pid:
        return f"pane runs pid {pane.pane_pid}, not the recorded pid {record.pid}"
    if pid_reused(record, facts):
        return f"pid {record.pid} was reused by another process"
    return ""


def judge(
    record: Session,
    pane: LivePane | None,
    now: dt.datetime,
    policy: Policy,
    facts: ProcessFacts = _NO_FACTS,
) -> list[Action]:
    """Return what should happen to one record given its owned live pane (or None).

    ``facts`` describe the recorded pid now (see :class:`ProcessFacts`).
    """
    status = record.status
    name = record.tmux_session

    def act(kind: Kind, reason: str, code: int | None = None) -> Action:
        return Action(
            kind, record.id, reason, name, pane.session_id if pane else None, exit_code=code
        )

    if status.ended:
        if pane is None or not policy.remove:
            if pane is not None and not pane.pane_dead:
                return [act(Kind.REPORT, f"record is {status.value} but its agent still runs")]
            return []
        why = (
            "tidy the dead pane of an ended session"
            if pane.pane_dead
            else (f"record is {status.value} but its agent still runs")
        )
        return [act(Kind.KILL_SESSION, why)]

    young = (now - parse_time(record.updated_at)).total_seconds() < policy.grace
    exited = pane is not None and pane.pane_dead
    if young and not (exited and policy.exits_skip_grace and status not in _UNSTARTED):
        return []  # e.g. a start between writing its record and creating the session

    if status in _UNSTARTED:
        actions = []
        if pane is not None and policy.remove:
            # Killed before the mark: the kill re-checks that the start is still unfinished.
            actions.append(act(Kind.KILL_SESSION, "session of a start that never finished"))
        code = pane.pane_dead_status if pane is not None and pane.pane_dead else None
        actions.append(
            act(Kind.MARK_FAILED, f"{status.value} for longer than the grace period", code)
        )
        if pane is not None and not pane.pane_dead and not policy.remove:
            actions.append(
                act(Kind.REPORT, "its start never finished, but its session still runs")
            )
        return actions
    if pane is None:
        if is_alive(record, facts):
            return [act(Kind.REPORT, f"agent pid {record.pid} runs, but not in its tmux session")]
        if status is Status.STOPPING:
            return [act(Kind.MARK_STOPPED, "stop was interrupted after its session ended")]
        if policy.remove:
            return [act(Kind.REMOVE_RECORD, "tmux session is gone")]
        if status is Status.ORPHANED:
            return []
        return [act(Kind.MARK_ORPHANED, "tmux session is gone")]
    # A user who split or swapped panes puts another pane first in the listing; while
    # the recorded agent still runs, that pane says nothing about it.
    elsewhere = (
        record.pid is not None
        and pane.pane_pid is not None
        and pane.pane_pid != record.pid
        and is_alive(record, facts)
    )
    if exited and not elsewhere:
        code, signal = pane.pane_dead_status, pane.pane_dead_signal
        if code is None and signal is None and _exit_may_come(record, pane, now, facts):
            # tmux marks a pane dead when its pty closes, a moment before it reaps the
            # agent and learns how it ended; the next look will know.
            return []
        if status is Status.STOPPING:
            # Someone asked for this stop; it ends as the stop would have ended it.
            return [
                act(Kind.KILL_SESSION, "finish an interrupted stop"),
                act(Kind.MARK_STOPPED, "finish an interrupted stop", code),
            ]
        kill = [act(Kind.KILL_SESSION, "tidy the dead pane")] if policy.remove else []
        if code == 0:
            return [act(Kind.MARK_COMPLETED, "agent exited with status 0", 0), *kill]
        if code is not None:
            return [act(Kind.MARK_FAILED, f"agent exited with status {code}", code), *kill]
        if signal is not None:
            return [act(Kind.MARK_FAILED, f"agent was killed by signal {signal}"), *kill]
        return [act(Kind.MARK_FAILED, "agent ended; tmux did not report how"), *kill]
    stale = "" if elsewhere else _not_our_process(record, pane, facts)
    if stale:
        if policy.remove:
            return [act(Kind.REMOVE_RECORD, stale)]
        return [] if status is Status.ORPHANED else [act(Kind.MARK_ORPHANED, stale)]
    if status is Status.STOPPING:
        # Someone asked for this stop; an interrupted one is finished, in either mode.
        return [
            act(Kind.KILL_SESSION, "finish an interrupted stop"),
            act(Kind.MARK_STOPPED, "finish an interrupted stop"),
        ]
    if status is Status.ORPHANED:
        return [act(Kind.MARK_RUNNING, "its tmux session is back")]
    return []


#: How long after a pane died tmux may still be about to report how its agent ended.
EXIT_REPORT_WAIT = 10.0


def _exit_may_come(record: Session, pane: LivePane, now: dt.datetime, facts: ProcessFacts) -> bool:
    """Whether a dead pane's missing exit status may still be learned by looking again.

    tmux 3.3a sets the death time when the pty closes, before it reaps the agent; if we
    looked in between, the status comes a moment later.
    """
    if pid_reused(record, facts):
        return False
    if pane.pane_dead_time is None:
        return facts.create_time is not None
    return now.timestamp() - pane.pane_dead_time < EXIT_REPORT_WAIT


def judge_session(
    pane: LivePane,
    store_id: str | None,
    known_ids: Collection[str],
    now: dt.datetime,
    policy: Policy,
) -> list[Action]:
    """Return what should happen to one live session without a record (direction 2).

    ``known_ids`` holds every id with a record, readable or not: a session whose record
    cannot be read is protected, not an orphan.
    """
    owner = owner_of(pane, store_id)
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
    *,
    store_id: str | None,
    protected: Collection[str] = (),
    facts: Mapping[int, ProcessFacts] | None = None,
) -> list[Action]:
    """Return every action needed to make records and one server's sessions agree.

    Pure: no I/O. ``live`` maps session name to its first pane, as one listing saw it;
    ``facts`` maps a recorded pid to what the system says of it now; ``protected`` holds
    the ids of records that cannot be read (or have a quarantined copy): no action ever
    names them, readable record or not, until a person fixes or removes the file.
    """
    known_facts = facts or {}
    shielded = frozenset(protected)
    records = [r for r in records if r.id not in shielded]
    matched = match(records, live, store_id)
    actions: list[Action] = []
    for record in records:
        pane = matched.get(record.id)
        pid_facts = known_facts.get(record.pid, _NO_FACTS) if record.pid else _NO_FACTS
        actions.extend(judge(record, pane, now, policy, pid_facts))
    # A record this plan removes no longer owns its session, which would otherwise be
    # found ownerless (and killed) only by the next run.
    removed = {a.session_id for a in actions if a.kind is Kind.REMOVE_RECORD}
    known = ({record.id for record in records} - removed) | shielded
    for pane in live.values():
        actions.extend(judge_session(pane, store_id, known, now, policy))
    return actions


def derive_activity(
    record: Session,
    pane: LivePane | None,
    now: float,
    waiting: bool,
    working_seconds: float = WORKING_SECONDS,
) -> tuple[Activity, float | None] | None:
    """Return what a live agent is doing and since when (epoch seconds), else ``None``.

    ``waiting``: a profile pattern matched the pane's last lines. The agent's own word
    (``mark``) stands until the pane shows output after it; then output within
    ``working_seconds`` means working, older output idle.

    >>> p = LivePane("$1", "amux-abc", 0, "abc", False, "%1", 5, False, None, activity_at=95)
    >>> r = Session("abc", Status.RUNNING, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z")
    >>> derive_activity(r, p, 100.0, False)
    (<Activity.IDLE: 'idle'>, 95.0)
    >>> derive_activity(r, p, 97.0, False)[0], derive_activity(r, p, 97.0, True)[0]
    (<Activity.WORKING: 'working'>, <Activity.WAITING: 'waiting'>)
    """
    if pane is None or pane.pane_dead:
        return None
    output = float(pane.activity_at) if pane.activity_at is not None else None
    if waiting:
        return Activity.WAITING, output
    if record.activity is not None and record.activity_at is not None:
        marked = parse_time(record.activity_at).timestamp()
        if output is None or output <= marked + MARK_SLACK:
            return record.activity, marked
    if output is None:
        return Activity.UNKNOWN, None
    if now - output <= working_seconds:
        return Activity.WORKING, output
    return Activity.IDLE, output


# --- side effects --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Effects:
    """The side effects :func:`apply` and :func:`settle` need; the manager gives real ones."""

    store_id: str | None
    list_live: Callable[[], Mapping[str, LivePane]]
    update: Callable[[str, Callable[[Session], Session]], Session]
    delete: Callable[[str, Callable[[Session], None]], Session]
    get: Callable[[str], Session]
    lock: Callable[[str], contextlib.AbstractContextManager[None]]
    #: ``(kill $ids, tag $ids)`` in one tmux process -> ``{$id: error or ""}``.
    tmux: Callable[[Sequence[str], Sequence[str]], Mapping[str, str]]
    facts: Callable[[int], ProcessFacts]


class _Changed(Exception):
    """The record no longer calls for the planned action."""


def apply(actions: Sequence[Action], effects: Effects, policy: Policy) -> list[Outcome]:
    """Perform ``actions``: each re-judged under its record's lock, tmux changes at once.

    One failing action does not stop the others; its :class:`Outcome` says why.
    """
    todo = [a for a in actions if a.kind is not Kind.REPORT]
    if not todo:
        return [Outcome(a, False) for a in actions]
    try:
        fresh = effects.list_live()
    except (exc.AmuxError, OSError) as err:
        # Nothing was changed; a server that stopped answering fails its actions only.
        why = f"tmux could not be asked again: {err}"
        return [Outcome(a, False, "" if a.kind is Kind.REPORT else why) for a in actions]
    results: dict[int, Outcome] = {}
    tied = [a for a in todo if a.kind in SESSION_KINDS and _has_record(a, effects)]
    tied_ids = {id(a) for a in tied}
    ownerless = [a for a in todo if a.kind in SESSION_KINDS and id(a) not in tied_ids]
    records = [a for a in todo if a.kind not in SESSION_KINDS]
    # The session of a record this run removes: killed under that record's lock, first.
    removals = {a.session_id: a for a in records if a.kind is Kind.REMOVE_RECORD}
    for start in range(0, max(len(tied), 1), MAX_LOCKS_HELD):
        chunk = tied[start : start + MAX_LOCKS_HELD]
        with contextlib.ExitStack() as held:
            sessions: list[Action] = []
            for action in chunk:
                try:
                    held.enter_context(effects.lock(action.session_id))
                    record = effects.get(action.session_id)
                    removal = removals.get(action.session_id)
                    if removal is not None and action.kind is Kind.KILL_SESSION:
                        _still_planned(removal, record, fresh, effects, policy)
                        _still_the_session(action, fresh, effects.store_id)
                    else:
                        _still_planned(action, record, fresh, effects, policy)
                    sessions.append(action)
                except (_Changed, exc.SessionNotFound):
                    results[id(action)] = Outcome(action, False)
                except (exc.AmuxError, OSError) as err:
                    results[id(action)] = Outcome(action, False, str(err))
            if start == 0:
                sessions += _ownerless_still(ownerless, fresh, effects, results)
            results.update(_run_tmux(sessions, effects))
            # Marks of records whose sessions were just handled, still under their locks;
            # a record whose session could not be killed keeps its status.
            handled = {a.session_id: results[id(a)] for a in chunk}
            for action in [a for a in records if a.session_id in handled]:
                before = handled[action.session_id]
                results[id(action)] = (
                    Outcome(action, False, f"not done: {before.detail}")
                    if before.failed
                    else _apply_record(action, effects, policy, fresh)
                )
    for action in records:
        if id(action) not in results:
            results[id(action)] = _apply_record(action, effects, policy, fresh)
    return [results.get(id(a), Outcome(a, False)) for a in actions]


def settle(
    record: Session, pane: LivePane | None, effects: Effects, facts: ProcessFacts, grace: float
) -> Session:
    """Record what a look at one session proved (an exit, a session that is back).

    Used by every command that looks at a session; changes only the record.
    """
    policy = Policy(remove=False, grace=grace, exits_skip_grace=True)
    actions = [
        a
        for a in judge(record, pane, dt.datetime.now(dt.UTC), policy, facts)
        if a.kind in MARK_STATUS
    ]
    if not actions:
        return record
    fresh = {pane.session_name: pane} if pane is not None else {}
    outcomes = [_apply_record(a, effects, policy, fresh) for a in actions]
    if any(o.done for o in outcomes):
        return effects.get(record.id)
    return record


def _has_record(action: Action, effects: Effects) -> bool:
    try:
        effects.get(action.session_id)
    except exc.SessionNotFound:
        return False
    except exc.AmuxError:
        return True  # unreadable: never ownerless
    return True


def _ownerless_still(
    actions: Sequence[Action],
    fresh: Mapping[str, LivePane],
    effects: Effects,
    results: dict[int, Outcome],
) -> list[Action]:
    """Keep the direction-2 actions whose session is unchanged and still has no record.

    No lock is needed: ``start`` writes a record before it creates the session, and
    never reuses an id whose lock file exists, so no record can appear for it.
    """
    kept = []
    for action in actions:
        pane = fresh.get(action.tmux_session or "")
        if (
            pane is None
            or pane.session_id != action.tmux_session_id
            or owner_of(pane, effects.store_id) != action.session_id
            or _has_record(action, effects)
        ):
            results[id(action)] = Outcome(action, False)
        else:
            kept.append(action)
    return kept


def _still_the_session(
    action: Action, fresh: Mapping[str, LivePane], store_id: str | None
) -> None:
    """Raise :class:`_Changed` unless the fresh listing shows the same owned session."""
    pane = fresh.get(action.tmux_session or "")
    if (
        pane is None
        or pane.session_id != action.tmux_session_id
        or owner_of(pane, store_id) != action.session_id
    ):
        raise _Changed


def _run_tmux(actions: Sequence[Action], effects: Effects) -> dict[int, Outcome]:
    if not actions:
        return {}
    kills = [a.tmux_session_id for a in actions if a.kind is Kind.KILL_SESSION]
    tags = [a.tmux_session_id for a in actions if a.kind is Kind.TAG_SESSION]
    try:
        errors = effects.tmux([k for k in kills if k], [t for t in tags if t])
    except (exc.AmuxError, OSError) as err:
        return {id(a): Outcome(a, False, str(err)) for a in actions}
    out = {}
    for action in actions:
        error = errors.get(action.tmux_session_id or "", "no session id")
        out[id(action)] = Outcome(action, not error, error)
    return out


def _still_planned(
    action: Action,
    record: Session,
    fresh: Mapping[str, LivePane],
    effects: Effects,
    policy: Policy,
) -> None:
    pane = match([record], fresh, effects.store_id).get(record.id)
    facts = effects.facts(record.pid) if record.pid is not None else _NO_FACTS
    if action not in judge(record, pane, dt.datetime.now(dt.UTC), policy, facts):
        raise _Changed


def _apply_record(
    action: Action, effects: Effects, policy: Policy, fresh: Mapping[str, LivePane]
) -> Outcome:
    sid = action.session_id
    try:
        if action.kind is Kind.REMOVE_RECORD:
            effects.delete(sid, lambda r: _still_planned(action, r, fresh, effects, policy))
            return Outcome(action, True)
        target = MARK_STATUS[action.kind]

        def mark(record: Session) -> Session:
            _still_planned(action, record, fresh, effects, policy)
            changes: dict[str, object] = {} if target is Status.FAILED else {"error": None}
            if action.exit_code is not None:
                changes["exit_code"] = action.exit_code
            if target is Status.FAILED and action.exit_code is None:
                changes["error"] = action.reason
            if target.ended:
                changes["stopped_at"] = record.stopped_at or utcnow()
            return record.transition(target, **changes)

        effects.update(sid, mark)
        return Outcome(action, True)
    except (_Changed, exc.SessionNotFound):
        # Changed meanwhile, or removed by someone else: nothing left to do.
        return Outcome(action, False)
    except (exc.AmuxError, OSError) as err:
        # One failure must not stop the others; the OSError arm is for effects that
        # did not translate theirs.
        return Outcome(action, False, str(err))
