"""reconcile's judgement over plain data: judge, judge_session, match, plan, derive_activity.

No tmux and no files: records, one listing and process facts in, actions out. The tables
name every branch; the hypothesis properties check what must hold for any world (pure,
idempotent, foreign and protected sessions untouched, reports change nothing).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as dt
import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amux_tmux import exc
from amux_tmux import reconcile as rc
from amux_tmux.model import Activity, LivePane, ProcessFacts, Session, Status, format_time
from amux_tmux.reconcile import (
    MARK_STATUS,
    SESSION_KINDS,
    Action,
    Kind,
    Outcome,
    Policy,
    derive_activity,
    judge,
    judge_session,
    match,
    owner_of,
    plan,
)

NOW = dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=dt.UTC)
OLD = 3600.0
SOCK = "/tmp/tmux-0/amux"
STORE = "st0re1d"
OTHER_STORE = "0therst0re"
PID = 100
CTIME = 1000.0
A = "abc001"
B = "bcd002"
C = "cde003"

MARK = Policy(remove=False, grace=30.0)
REMOVE = Policy(remove=True, grace=30.0)
LOOK = Policy(remove=False, grace=30.0, exits_skip_grace=True)
POLICIES = {"mark": MARK, "remove": REMOVE, "look": LOOK}

ALIVE = {PID: ProcessFacts(CTIME)}
GONE = {PID: ProcessFacts(None)}
REUSED = {PID: ProcessFacts(CTIME + 500)}
ZOMBIE = {PID: ProcessFacts(CTIME, zombie=True)}

_pane_numbers = itertools.count(1)


def ago(seconds: float) -> str:
    return format_time(NOW - dt.timedelta(seconds=seconds))


def rec(
    sid: str,
    status: Status = Status.RUNNING,
    *,
    age: float = OLD,
    pid: int | None = PID,
    ctime: float | None = CTIME,
    session: str | None = "default",
    activity: Activity | None = None,
    activity_at: float | None = None,
) -> Session:
    """A record last changed ``age`` seconds before NOW."""
    return Session(
        id=sid,
        status=status,
        created_at=ago(age + 5),
        updated_at=ago(age),
        tmux_socket=SOCK,
        tmux_session=f"amux-{sid}" if session == "default" else session,
        pid=pid,
        pid_create_time=ctime,
        activity=activity,
        activity_at=None if activity_at is None else ago(activity_at),
    )


def pane(
    name: str,
    owner: str | None = "default",
    *,
    store: str | None = STORE,
    age: float = OLD,
    pid: int | None = PID,
    dead: bool = False,
    code: int | None = None,
    signal: int | None = None,
    died: float | None = None,
    tagged: bool = False,
    output: float | None = None,
) -> LivePane:
    """The first pane of a session created ``age`` seconds before NOW.

    ``owner="default"`` tags it with the id its name holds (as a store does).
    """
    if owner == "default":
        owner = name.removeprefix("amux-") if name.startswith("amux-") else None
    n = next(_pane_numbers)
    return LivePane(
        session_id=f"${n}",
        session_name=name,
        session_created=int(NOW.timestamp() - age),
        owner_id=owner,
        orphan_tag=tagged,
        pane_id=f"%{n}",
        pane_pid=pid,
        pane_dead=dead,
        pane_dead_status=code,
        pane_dead_signal=signal,
        pane_dead_time=None if died is None else int(NOW.timestamp() - died),
        store_id=store,
        activity_at=None if output is None else int(NOW.timestamp() - output),
    )


def live(*panes: LivePane) -> dict[str, LivePane]:
    return {p.session_name: p for p in panes}


#: (kind, session id, exit code, a fragment of the reason)
Expected = tuple[Kind, str, int | None, str]


class Case(NamedTuple):
    test_id: str
    records: tuple[Session, ...]
    panes: tuple[LivePane, ...]
    policy: Policy
    expected: tuple[Expected, ...]
    facts: Mapping[int, ProcessFacts] | None = None
    protected: frozenset[str] = frozenset()
    store_id: str | None = STORE


def _check(case: Case) -> list[Action]:
    world = live(*case.panes)
    actions = plan(
        case.records,
        world,
        NOW,
        case.policy,
        store_id=case.store_id,
        protected=case.protected,
        facts=case.facts,
    )
    got = [(a.kind, a.session_id, a.exit_code) for a in actions]
    assert got == [(k, sid, code) for k, sid, code, _ in case.expected], actions
    for action, (*_, fragment) in zip(actions, case.expected, strict=True):
        assert fragment in action.reason, action
        if action.kind in SESSION_KINDS:
            # A tmux change always names the exact $id of a session this store owns.
            [target] = [p for p in world.values() if p.session_id == action.tmux_session_id]
            assert owner_of(target, case.store_id) == action.session_id
            assert action.tmux_session == target.session_name
    return actions


# --- a record whose owned session is live -------------------------------------------------

LIVE_CASES = [
    Case("running-alive-mark", (rec(A),), (pane(f"amux-{A}"),), MARK, (), ALIVE),
    Case("running-alive-remove", (rec(A),), (pane(f"amux-{A}"),), REMOVE, (), ALIVE),
    Case("running-alive-no-facts", (rec(A),), (pane(f"amux-{A}"),), MARK, ()),
    Case(
        # psutil says "no such pid" but tmux shows the pane: no evidence against it.
        "running-alive-pid-gone-per-psutil",
        (rec(A),),
        (pane(f"amux-{A}"),),
        REMOVE,
        (),
        GONE,
    ),
    Case("record-pid-unknown", (rec(A, pid=None),), (pane(f"amux-{A}"),), MARK, (), ALIVE),
    Case("record-ctime-unknown", (rec(A, ctime=None),), (pane(f"amux-{A}"),), MARK, (), REUSED),
    Case("pane-pid-unknown", (rec(A),), (pane(f"amux-{A}", pid=None),), MARK, (), ALIVE),
    Case(
        "orphaned-session-back",
        (rec(A, Status.ORPHANED),),
        (pane(f"amux-{A}"),),
        MARK,
        ((Kind.MARK_RUNNING, A, None, "back"),),
        ALIVE,
    ),
    Case(
        "orphaned-session-back-remove",
        (rec(A, Status.ORPHANED),),
        (pane(f"amux-{A}"),),
        REMOVE,
        ((Kind.MARK_RUNNING, A, None, "back"),),
    ),
    Case(
        "stopping-alive-mark-finishes-the-stop",
        (rec(A, Status.STOPPING),),
        (pane(f"amux-{A}"),),
        MARK,
        ((Kind.KILL_SESSION, A, None, "interrupted stop"), (Kind.MARK_STOPPED, A, None, "stop")),
        ALIVE,
    ),
    Case(
        "stopping-alive-remove-finishes-the-stop",
        (rec(A, Status.STOPPING),),
        (pane(f"amux-{A}"),),
        REMOVE,
        ((Kind.KILL_SESSION, A, None, "interrupted stop"), (Kind.MARK_STOPPED, A, None, "stop")),
        ALIVE,
    ),
    # --- the pane runs another process than the record's: stale ---
    Case(
        "pid-mismatch-mark",
        (rec(A),),
        (pane(f"amux-{A}", pid=200),),
        MARK,
        ((Kind.MARK_ORPHANED, A, None, "not the recorded pid 100"),),
        GONE,
    ),
    Case(
        "pid-mismatch-remove-removes-and-kills",
        (rec(A),),
        (pane(f"amux-{A}", pid=200),),
        REMOVE,
        (
            (Kind.REMOVE_RECORD, A, None, "not the recorded pid"),
            (Kind.KILL_SESSION, A, None, "no record"),
        ),
        GONE,
    ),
    Case(
        "pid-mismatch-remove-young-session-kept",
        (rec(A),),
        (pane(f"amux-{A}", pid=200, age=5),),
        REMOVE,
        ((Kind.REMOVE_RECORD, A, None, "not the recorded pid"),),
        GONE,
    ),
    Case(
        "pid-mismatch-already-orphaned",
        (rec(A, Status.ORPHANED),),
        (pane(f"amux-{A}", pid=200),),
        MARK,
        (),
        GONE,
    ),
    Case(
        "pid-reused-mark",
        (rec(A),),
        (pane(f"amux-{A}"),),
        MARK,
        ((Kind.MARK_ORPHANED, A, None, "reused"),),
        REUSED,
    ),
    Case(
        "pid-reused-earlier-ctime-remove",
        (rec(A),),
        (pane(f"amux-{A}"),),
        REMOVE,
        ((Kind.REMOVE_RECORD, A, None, "reused"), (Kind.KILL_SESSION, A, None, "no record")),
        {PID: ProcessFacts(CTIME - 500)},
    ),
    Case(
        "pid-ctime-within-slack",
        (rec(A),),
        (pane(f"amux-{A}"),),
        MARK,
        (),
        {PID: ProcessFacts(CTIME + rc.PID_TIME_SLACK - 0.1)},
    ),
    Case(
        "pid-ctime-just-past-slack",
        (rec(A),),
        (pane(f"amux-{A}"),),
        MARK,
        ((Kind.MARK_ORPHANED, A, None, "reused"),),
        {PID: ProcessFacts(CTIME + rc.PID_TIME_SLACK + 0.1)},
    ),
    Case(
        "pid-owned-by-someone-else",  # psutil AccessDenied -> create time -1
        (rec(A),),
        (pane(f"amux-{A}"),),
        MARK,
        ((Kind.MARK_ORPHANED, A, None, "reused"),),
        {PID: ProcessFacts(-1.0)},
    ),
    # --- the user split or swapped panes: the first pane listed is not the agent's ---
    Case(
        "other-pane-first-agent-alive-remove",
        (rec(A),),
        (pane(f"amux-{A}", pid=200),),
        REMOVE,
        (),
        ALIVE,
    ),
    Case(
        "other-pane-first-agent-alive-mark",
        (rec(A),),
        (pane(f"amux-{A}", pid=200),),
        MARK,
        (),
        ALIVE,
    ),
    Case(
        "other-dead-pane-first-agent-alive-remove",
        (rec(A),),
        (pane(f"amux-{A}", pid=200, dead=True, code=0),),
        REMOVE,
        (),
        ALIVE,
    ),
    Case(
        "other-pane-first-orphaned-agent-alive",
        (rec(A, Status.ORPHANED),),
        (pane(f"amux-{A}", pid=200),),
        MARK,
        ((Kind.MARK_RUNNING, A, None, "back"),),
        ALIVE,
    ),
    Case(
        "other-pane-first-agent-zombie-is-stale",
        (rec(A),),
        (pane(f"amux-{A}", pid=200),),
        MARK,
        ((Kind.MARK_ORPHANED, A, None, "not the recorded pid"),),
        ZOMBIE,
    ),
]

EXIT_CASES = [
    Case(
        "dead-exit0-completed",
        (rec(A),),
        (pane(f"amux-{A}", dead=True, code=0),),
        MARK,
        ((Kind.MARK_COMPLETED, A, 0, "status 0"),),
    ),
    Case(
        "dead-exit0-remove-also-tidies",
        (rec(A),),
        (pane(f"amux-{A}", dead=True, code=0),),
        REMOVE,
        ((Kind.MARK_COMPLETED, A, 0, "status 0"), (Kind.KILL_SESSION, A, None, "dead pane")),
    ),
    Case(
        "dead-exit3-failed",
        (rec(A),),
        (pane(f"amux-{A}", dead=True, code=3),),
        MARK,
        ((Kind.MARK_FAILED, A, 3, "status 3"),),
    ),
    Case(
        "dead-exit3-remove",
        (rec(A),),
        (pane(f"amux-{A}", dead=True, code=3),),
        REMOVE,
        ((Kind.MARK_FAILED, A, 3, "status 3"), (Kind.KILL_SESSION, A, None, "dead pane")),
    ),
    Case(
        "dead-by-signal",
        (rec(A),),
        (pane(f"amux-{A}", dead=True, signal=9, died=60),),
        MARK,
        ((Kind.MARK_FAILED, A, None, "signal 9"),),
    ),
    Case(
        "dead-by-signal-remove",
        (rec(A),),
        (pane(f"amux-{A}", dead=True, signal=15),),
        REMOVE,
        ((Kind.MARK_FAILED, A, None, "signal 15"), (Kind.KILL_SESSION, A, None, "dead pane")),
    ),
    Case(
        "dead-unreported-not-reaped-yet-waits",
        (rec(A),),
        (pane(f"amux-{A}", dead=True),),
        REMOVE,
        (),
        ALIVE,
    ),
    Case(
        "dead-unreported-zombie-not-reaped-yet-waits",
        (rec(A),),
        (pane(f"amux-{A}", dead=True),),
        MARK,
        (),
        ZOMBIE,
    ),
    Case(
        "dead-unreported-process-gone",
        (rec(A),),
        (pane(f"amux-{A}", dead=True),),
        MARK,
        ((Kind.MARK_FAILED, A, None, "did not report"),),
        GONE,
    ),
    Case(
        "dead-unreported-no-facts",
        (rec(A),),
        (pane(f"amux-{A}", dead=True),),
        MARK,
        ((Kind.MARK_FAILED, A, None, "did not report"),),
    ),
    Case(
        "dead-unreported-pid-reused",
        (rec(A),),
        (pane(f"amux-{A}", dead=True),),
        REMOVE,
        ((Kind.MARK_FAILED, A, None, "did not report"), (Kind.KILL_SESSION, A, None, "dead")),
        REUSED,
    ),
    Case(
        "dead-unreported-but-dead-time-known",
        (rec(A),),
        (pane(f"amux-{A}", dead=True, died=60),),
        MARK,
        ((Kind.MARK_FAILED, A, None, "did not report"),),
        ALIVE,
    ),
    Case(
        # tmux 3.3a dates the death before it learns the status: wait a little.
        "dead-unreported-died-just-now-waits",
        (rec(A),),
        (pane(f"amux-{A}", dead=True, died=1),),
        REMOVE,
        (),
        GONE,
    ),
    Case(
        "dead-unreported-died-at-the-wait-limit",
        (rec(A),),
        (pane(f"amux-{A}", dead=True, died=rc.EXIT_REPORT_WAIT),),
        MARK,
        ((Kind.MARK_FAILED, A, None, "did not report"),),
        GONE,
    ),
    Case(
        "dead-unreported-died-just-now-pid-reused",
        (rec(A),),
        (pane(f"amux-{A}", dead=True, died=1),),
        MARK,
        ((Kind.MARK_FAILED, A, None, "did not report"),),
        REUSED,
    ),
    Case(
        "dead-pane-with-another-pid-is-still-an-exit",
        (rec(A),),
        (pane(f"amux-{A}", dead=True, code=0, pid=999),),
        MARK,
        ((Kind.MARK_COMPLETED, A, 0, "status 0"),),
        GONE,
    ),
    Case(
        "orphaned-dead-exit0",
        (rec(A, Status.ORPHANED),),
        (pane(f"amux-{A}", dead=True, code=0),),
        MARK,
        ((Kind.MARK_COMPLETED, A, 0, "status 0"),),
    ),
    Case(
        # The stop was asked for: an interrupted one ends as a stop, keeping the code.
        "stopping-dead-finishes-the-stop",
        (rec(A, Status.STOPPING),),
        (pane(f"amux-{A}", dead=True, code=2),),
        MARK,
        ((Kind.KILL_SESSION, A, None, "interrupted stop"), (Kind.MARK_STOPPED, A, 2, "stop")),
    ),
    Case(
        "stopping-dead-by-signal-remove",
        (rec(A, Status.STOPPING),),
        (pane(f"amux-{A}", dead=True, signal=15),),
        REMOVE,
        (
            (Kind.KILL_SESSION, A, None, "interrupted stop"),
            (Kind.MARK_STOPPED, A, None, "stop"),
        ),
    ),
]

GONE_CASES = [
    Case("gone-mark", (rec(A),), (), MARK, ((Kind.MARK_ORPHANED, A, None, "gone"),), GONE),
    Case("gone-remove", (rec(A),), (), REMOVE, ((Kind.REMOVE_RECORD, A, None, "gone"),), GONE),
    Case("gone-orphaned-mark-again", (rec(A, Status.ORPHANED),), (), MARK, (), GONE),
    Case(
        "gone-orphaned-remove",
        (rec(A, Status.ORPHANED),),
        (),
        REMOVE,
        ((Kind.REMOVE_RECORD, A, None, "gone"),),
    ),
    Case(
        "gone-stopping-mark",
        (rec(A, Status.STOPPING),),
        (),
        MARK,
        ((Kind.MARK_STOPPED, A, None, "interrupted"),),
    ),
    Case(
        "gone-stopping-remove-marks-not-removes",
        (rec(A, Status.STOPPING),),
        (),
        REMOVE,
        ((Kind.MARK_STOPPED, A, None, "interrupted"),),
    ),
    Case(
        "gone-agent-alive-reported-not-orphaned",
        (rec(A),),
        (),
        MARK,
        ((Kind.REPORT, A, None, "pid 100 runs"),),
        ALIVE,
    ),
    Case(
        "gone-agent-alive-remove-reported-not-removed",
        (rec(A),),
        (),
        REMOVE,
        ((Kind.REPORT, A, None, "pid 100 runs"),),
        ALIVE,
    ),
    Case(
        "gone-agent-alive-ctime-unrecorded",
        (rec(A, ctime=None),),
        (),
        REMOVE,
        ((Kind.REPORT, A, None, "runs"),),
        ALIVE,
    ),
    Case(
        "gone-orphaned-agent-alive-reported-every-run",
        (rec(A, Status.ORPHANED),),
        (),
        MARK,
        ((Kind.REPORT, A, None, "runs"),),
        ALIVE,
    ),
    Case(
        "gone-stopping-agent-alive",
        (rec(A, Status.STOPPING),),
        (),
        MARK,
        ((Kind.REPORT, A, None, "runs"),),
        ALIVE,
    ),
    Case(
        "gone-agent-zombie", (rec(A),), (), MARK, ((Kind.MARK_ORPHANED, A, None, "gone"),), ZOMBIE
    ),
    Case(
        "gone-pid-reused", (rec(A),), (), REMOVE, ((Kind.REMOVE_RECORD, A, None, "gone"),), REUSED
    ),
    Case(
        "gone-no-pid-recorded",
        (rec(A, pid=None),),
        (),
        MARK,
        ((Kind.MARK_ORPHANED, A, None, "gone"),),
        ALIVE,
    ),
    # Ownership is by store id, @amux_id and name: a look-alike is not the record's session.
    Case(
        "same-name-untagged-is-not-ours",
        (rec(A),),
        (pane(f"amux-{A}", owner=None),),
        MARK,
        ((Kind.MARK_ORPHANED, A, None, "gone"),),
    ),
    Case(
        "same-name-other-id-tag-is-not-ours",
        (rec(A),),
        (pane(f"amux-{A}", owner=B),),
        REMOVE,
        ((Kind.REMOVE_RECORD, A, None, "gone"),),
    ),
    Case(
        "same-name-other-store-is-not-ours",
        (rec(A),),
        (pane(f"amux-{A}", store=OTHER_STORE),),
        REMOVE,
        ((Kind.REMOVE_RECORD, A, None, "gone"),),
    ),
    Case(
        "same-name-no-store-tag-is-not-ours",
        (rec(A),),
        (pane(f"amux-{A}", store=None),),
        MARK,
        ((Kind.MARK_ORPHANED, A, None, "gone"),),
    ),
    Case(
        "store-without-id-owns-nothing",
        (rec(A),),
        (pane(f"amux-{A}"), pane(f"amux-{B}")),
        REMOVE,
        ((Kind.REMOVE_RECORD, A, None, "gone"),),
        store_id=None,
    ),
    # The record's own session is amux-<id>, whatever a hand edit put in tmux_session.
    Case(
        "session-name-edited-away-still-matched",
        (rec(A, session=None),),
        (pane(f"amux-{A}"),),
        MARK,
        (),
        ALIVE,
    ),
    Case(
        "session-name-edited-to-another-still-matched",
        (rec(A, session=f"amux-{B}"),),
        (pane(f"amux-{A}"), pane(f"amux-{B}")),
        MARK,
        ((Kind.TAG_SESSION, B, None, "no record"),),
        ALIVE,
    ),
]

GRACE_CASES = [
    Case("young-gone-mark", (rec(A, age=10),), (), MARK, (), GONE),
    Case("young-gone-remove", (rec(A, age=10),), (), REMOVE, (), GONE),
    Case("young-gone-look", (rec(A, age=10),), (), LOOK, (), GONE),
    Case("young-stopping-gone", (rec(A, Status.STOPPING, age=10),), (), MARK, ()),
    Case(
        "young-stopping-alive", (rec(A, Status.STOPPING, age=10),), (pane(f"amux-{A}"),), MARK, ()
    ),
    Case(
        "young-orphaned-back-waits",
        (rec(A, Status.ORPHANED, age=10),),
        (pane(f"amux-{A}"),),
        MARK,
        (),
    ),
    Case(
        "young-dead-reconciler-waits",
        (rec(A, age=10),),
        (pane(f"amux-{A}", dead=True, code=0),),
        REMOVE,
        (),
    ),
    Case(
        "young-dead-look-records-the-exit",
        (rec(A, age=10),),
        (pane(f"amux-{A}", dead=True, code=4),),
        LOOK,
        ((Kind.MARK_FAILED, A, 4, "status 4"),),
    ),
    Case(
        "young-dead-look-remove-also-tidies",
        (rec(A, age=10),),
        (pane(f"amux-{A}", dead=True, code=0),),
        Policy(remove=True, grace=30, exits_skip_grace=True),
        ((Kind.MARK_COMPLETED, A, 0, "status 0"), (Kind.KILL_SESSION, A, None, "dead pane")),
    ),
    Case("young-stale-waits", (rec(A, age=10),), (pane(f"amux-{A}"),), MARK, (), REUSED),
    Case("young-stale-look-waits", (rec(A, age=10),), (pane(f"amux-{A}"),), LOOK, (), REUSED),
    Case(
        "grace-boundary-acts",
        (rec(A, age=30),),
        (),
        MARK,
        ((Kind.MARK_ORPHANED, A, None, "gone"),),
    ),
    Case(
        "grace-zero-acts-at-once",
        (rec(A, age=0),),
        (),
        Policy(grace=0),
        ((Kind.MARK_ORPHANED, A, None, "gone"),),
    ),
    Case("grace-longer-than-age", (rec(A),), (), Policy(grace=OLD * 2), ()),
    Case("updated-in-the-future", (rec(A, age=-600),), (), Policy(grace=0), ()),
]

START_CASES = [
    Case("starting-young", (rec(A, Status.STARTING, age=5, pid=None),), (), REMOVE, ()),
    Case("created-young", (rec(A, Status.CREATED, age=5, pid=None),), (), REMOVE, ()),
    Case(
        "starting-young-dead-look-waits",
        (rec(A, Status.STARTING, age=5),),
        (pane(f"amux-{A}", dead=True, code=0),),
        LOOK,
        (),
    ),
    Case(
        "starting-old-gone-mark",
        (rec(A, Status.STARTING, pid=None),),
        (),
        MARK,
        ((Kind.MARK_FAILED, A, None, "starting for longer"),),
    ),
    Case(
        "starting-old-gone-remove",
        (rec(A, Status.STARTING, pid=None),),
        (),
        REMOVE,
        ((Kind.MARK_FAILED, A, None, "starting for longer"),),
    ),
    Case(
        "created-old",
        (rec(A, Status.CREATED, pid=None, ctime=None),),
        (),
        MARK,
        ((Kind.MARK_FAILED, A, None, "created for longer"),),
    ),
    Case(
        "starting-old-alive-mark-fails-and-reports",
        (rec(A, Status.STARTING, pid=None),),
        (pane(f"amux-{A}"),),
        MARK,
        (
            (Kind.MARK_FAILED, A, None, "starting for longer"),
            (Kind.REPORT, A, None, "still runs"),
        ),
    ),
    Case(
        "starting-old-alive-remove-kills-first",
        (rec(A, Status.STARTING, pid=None),),
        (pane(f"amux-{A}"),),
        REMOVE,
        (
            (Kind.KILL_SESSION, A, None, "never finished"),
            (Kind.MARK_FAILED, A, None, "starting for longer"),
        ),
    ),
    Case(
        "starting-old-dead-pane-keeps-code",
        (rec(A, Status.STARTING, pid=None),),
        (pane(f"amux-{A}", dead=True, code=127),),
        MARK,
        ((Kind.MARK_FAILED, A, 127, "starting for longer"),),
    ),
    Case(
        "starting-old-dead-pane-remove",
        (rec(A, Status.STARTING, pid=None),),
        (pane(f"amux-{A}", dead=True, code=1),),
        REMOVE,
        (
            (Kind.KILL_SESSION, A, None, "never finished"),
            (Kind.MARK_FAILED, A, 1, "starting for longer"),
        ),
    ),
]

SESSION_CASES = [
    Case(
        "owned-no-record-mark-tags",
        (),
        (pane(f"amux-{B}"),),
        MARK,
        ((Kind.TAG_SESSION, B, None, "no record"),),
    ),
    Case(
        "owned-no-record-remove-kills",
        (),
        (pane(f"amux-{B}"),),
        REMOVE,
        ((Kind.KILL_SESSION, B, None, "no record"),),
    ),
    Case("owned-already-tagged-mark", (), (pane(f"amux-{B}", tagged=True),), MARK, ()),
    Case(
        "owned-already-tagged-remove",
        (),
        (pane(f"amux-{B}", tagged=True),),
        REMOVE,
        ((Kind.KILL_SESSION, B, None, "no record"),),
    ),
    Case(
        "owned-dead-pane-no-record",
        (),
        (pane(f"amux-{B}", dead=True, code=1),),
        MARK,
        ((Kind.TAG_SESSION, B, None, "no record"),),
    ),
    Case("owned-young-mark", (), (pane(f"amux-{B}", age=5),), MARK, ()),
    Case("owned-young-remove", (), (pane(f"amux-{B}", age=5),), REMOVE, ()),
    Case(
        "owned-grace-boundary",
        (),
        (pane(f"amux-{B}", age=30),),
        REMOVE,
        ((Kind.KILL_SESSION, B, None, "no record"),),
    ),
    Case("owned-with-record", (rec(B),), (pane(f"amux-{B}"),), REMOVE, (), ALIVE),
    Case(
        "owned-with-young-starting-record",
        (rec(B, Status.STARTING, age=1),),
        (pane(f"amux-{B}"),),
        REMOVE,
        (),
    ),
    Case(
        "owned-with-unreadable-record-mark",
        (),
        (pane(f"amux-{B}"),),
        MARK,
        (),
        protected=frozenset({B}),
    ),
    Case(
        "owned-with-unreadable-record-remove",
        (),
        (pane(f"amux-{B}", dead=True, code=0),),
        REMOVE,
        (),
        protected=frozenset({B}),
    ),
    Case(
        "protected-id-with-a-readable-record-too",
        (rec(B),),
        (pane(f"amux-{B}", pid=200),),
        REMOVE,
        (),
        GONE,
        protected=frozenset({B}),
    ),
    Case("foreign-user-amux-foo", (), (pane("amux-foo", owner=None),), REMOVE, ()),
    Case("foreign-legacy-no-store-tag", (), (pane(f"amux-{B}", store=None),), REMOVE, ()),
    Case("foreign-other-store", (), (pane(f"amux-{B}", store=OTHER_STORE),), REMOVE, ()),
    Case("foreign-no-id-tag", (), (pane(f"amux-{B}", owner=None),), REMOVE, ()),
    Case("foreign-name-id-mismatch", (), (pane("amux-zzz999", owner=A),), REMOVE, ()),
    Case("foreign-renamed-by-user", (), (pane("my-work", owner=A),), REMOVE, ()),
    Case("foreign-invalid-id-tag", (), (pane("amux-BAD", owner="BAD"),), REMOVE, ()),
    Case("foreign-traversal-id-tag", (), (pane("amux-../x", owner="../x"),), REMOVE, ()),
    Case("foreign-empty-id-tag", (), (pane("amux-", owner=""),), REMOVE, ()),
    Case(
        "mixed-world-records-first-then-sessions",
        (rec(A), rec(C, Status.COMPLETED), rec("def004", age=1)),
        (
            pane(f"amux-{B}"),
            pane("amux-foo", owner=None),
            pane("amux-efg005", tagged=True),
            pane("amux-fgh006"),
            pane("amux-ghi007", store=OTHER_STORE),
        ),
        MARK,
        (
            (Kind.MARK_ORPHANED, A, None, "gone"),
            (Kind.TAG_SESSION, B, None, "no record"),
            (Kind.TAG_SESSION, "fgh006", None, "no record"),
        ),
        GONE,
    ),
]

CASES = [*LIVE_CASES, *EXIT_CASES, *GONE_CASES, *GRACE_CASES, *START_CASES, *SESSION_CASES]
assert len({c.test_id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.test_id for c in CASES])
def test_plan_branches(case: Case) -> None:
    """Each branch of judge / match / judge_session gives exactly the expected actions."""
    _check(case)


# --- ended records ------------------------------------------------------------------------


class EndedCase(NamedTuple):
    test_id: str
    state: str
    mode: str
    expected: tuple[Kind, str] | None


ENDED_CASES = [
    EndedCase("gone-mark", "gone", "mark", None),
    EndedCase("gone-remove", "gone", "remove", None),
    EndedCase("gone-look", "gone", "look", None),
    EndedCase("alive-mark-reports", "alive", "mark", (Kind.REPORT, "still runs")),
    EndedCase("alive-look-reports", "alive", "look", (Kind.REPORT, "still runs")),
    EndedCase("alive-remove-kills", "alive", "remove", (Kind.KILL_SESSION, "still runs")),
    EndedCase("dead-mark-keeps-the-pane", "dead", "mark", None),
    EndedCase("dead-look", "dead", "look", None),
    EndedCase("dead-remove-tidies", "dead", "remove", (Kind.KILL_SESSION, "tidy the dead pane")),
    EndedCase("other-pid-mark-reports", "other-pid", "mark", (Kind.REPORT, "still runs")),
    EndedCase("other-pid-remove-kills", "other-pid", "remove", (Kind.KILL_SESSION, "runs")),
]


@pytest.mark.parametrize("status", [Status.STOPPED, Status.COMPLETED, Status.FAILED])
@pytest.mark.parametrize("age", [OLD, 1.0], ids=["old", "young"])
@pytest.mark.parametrize("case", ENDED_CASES, ids=[c.test_id for c in ENDED_CASES])
def test_ended_records(status: Status, age: float, case: EndedCase) -> None:
    """An ended record never changes status; a live session of it is reported (mark) or
    killed (--remove), a dead pane tidied by --remove, whatever the record's age."""
    panes = {
        "gone": (),
        "alive": (pane(f"amux-{A}"),),
        "dead": (pane(f"amux-{A}", dead=True, code=9),),
        "other-pid": (pane(f"amux-{A}", pid=4242),),
    }[case.state]
    expected = () if case.expected is None else ((case.expected[0], A, None, case.expected[1]),)
    for facts in (None, ALIVE, REUSED):
        _check(
            Case(
                case.test_id,
                (rec(A, status, age=age),),
                panes,
                POLICIES[case.mode],
                expected,
                facts,
            )
        )


# --- the single-record and single-session functions ---------------------------------------


def test_judge_alone_matches_plan() -> None:
    """judge (one record, its pane) is what plan uses for each record."""
    p = pane(f"amux-{A}", dead=True, code=0)
    record = rec(A)
    assert judge(record, p, NOW, MARK) == plan([record], live(p), NOW, MARK, store_id=STORE)
    assert judge(record, None, NOW, MARK, ProcessFacts(CTIME)) == [
        Action(Kind.REPORT, A, "agent pid 100 runs, but not in its tmux session", f"amux-{A}")
    ]


def test_action_fields_name_the_session() -> None:
    """Actions carry the record's session name and the live $id (None when gone)."""
    p = pane(f"amux-{A}", dead=True, code=0)
    [done] = plan([rec(A)], live(p), NOW, MARK, store_id=STORE)
    assert (done.tmux_session, done.tmux_session_id) == (f"amux-{A}", p.session_id)
    [gone] = plan([rec(B)], {}, NOW, MARK, store_id=STORE)
    assert gone.to_dict() == {
        "action": "mark-orphaned",
        "id": B,
        "tmux_session": f"amux-{B}",
        "tmux_session_id": None,
        "reason": "tmux session is gone",
        "exit_code": None,
    }
    assert str(Kind.MARK_ORPHANED) == "mark-orphaned"


def test_outcome_results() -> None:
    """done / skipped (changed meanwhile) / failed (with why) / reported."""
    action = Action(Kind.MARK_ORPHANED, A, "tmux session is gone")
    assert Outcome(action, True).to_dict()["result"] == "done"
    skipped = Outcome(action, False)
    assert (skipped.to_dict()["result"], skipped.failed) == ("skipped", False)
    assert "detail" not in skipped.to_dict()
    failed = Outcome(action, False, "session abc001 is locked")
    assert (failed.to_dict()["result"], failed.failed) == ("failed", True)
    assert failed.to_dict()["detail"] == "session abc001 is locked"
    report = Outcome(Action(Kind.REPORT, A, "agent pid 1 runs"), False)
    assert (report.to_dict()["result"], report.failed) == ("reported", False)


def test_match_requires_ownership() -> None:
    """match pairs a record only with amux-<its id>, tagged with its id and our store."""
    mine = pane(f"amux-{A}")
    world = live(
        mine,
        pane(f"amux-{B}", owner=None),
        pane(f"amux-{C}", store=OTHER_STORE),
        pane("amux-def004", owner=A),
    )
    records = [rec(A), rec(B), rec(C), rec("def004")]
    assert match(records, world, STORE) == {A: mine}
    assert match(records, world, OTHER_STORE) == {C: world[f"amux-{C}"]}
    assert match(records, world, None) == {}


def test_owner_of() -> None:
    p = pane(f"amux-{A}")
    assert (owner_of(p, STORE), owner_of(p, OTHER_STORE), owner_of(p, None)) == (A, None, None)


def test_judge_session_accepts_any_collection_of_known_ids() -> None:
    p = pane(f"amux-{B}")
    assert judge_session(p, STORE, [B], NOW, REMOVE) == []
    assert judge_session(p, STORE, frozenset({A}), NOW, REMOVE)[0].kind is Kind.KILL_SESSION
    assert judge_session(p, OTHER_STORE, (), NOW, REMOVE) == []


def test_is_alive() -> None:
    record = rec(A)
    assert rc.is_alive(record, ProcessFacts(CTIME))
    assert rc.is_alive(record, ProcessFacts(CTIME + 0.5))
    assert not rc.is_alive(record, ProcessFacts(None))
    assert not rc.is_alive(record, ProcessFacts(CTIME, zombie=True))
    assert not rc.is_alive(record, ProcessFacts(CTIME + 2))
    assert not rc.is_alive(rec(A, pid=None), ProcessFacts(CTIME))
    assert rc.is_alive(rec(A, ctime=None), ProcessFacts(5.0))


# --- derive_activity ----------------------------------------------------------------------


class ActivityCase(NamedTuple):
    test_id: str
    record: Session
    pane: LivePane | None
    waiting: bool
    expected: tuple[Activity, float | None] | None


T = NOW.timestamp()
MARKED = rec(A, activity=Activity.WAITING, activity_at=20)
ACTIVITY_CASES = [
    ActivityCase("no-pane", rec(A), None, True, None),
    ActivityCase("dead-pane", rec(A), pane("x", dead=True, output=1), True, None),
    ActivityCase("waiting-pattern", rec(A), pane("x", output=1), True, (Activity.WAITING, T - 1)),
    ActivityCase("waiting-no-output", rec(A), pane("x"), True, (Activity.WAITING, None)),
    ActivityCase(
        "waiting-beats-mark", MARKED, pane("x", output=1), True, (Activity.WAITING, T - 1)
    ),
    ActivityCase("no-output", rec(A), pane("x"), False, (Activity.UNKNOWN, None)),
    ActivityCase("recent-output", rec(A), pane("x", output=1), False, (Activity.WORKING, T - 1)),
    ActivityCase("output-at-limit", rec(A), pane("x", output=3), False, (Activity.WORKING, T - 3)),
    ActivityCase("old-output", rec(A), pane("x", output=4), False, (Activity.IDLE, T - 4)),
    ActivityCase("mark-no-output", MARKED, pane("x"), False, (Activity.WAITING, T - 20)),
    ActivityCase(
        "mark-older-output", MARKED, pane("x", output=60), False, (Activity.WAITING, T - 20)
    ),
    ActivityCase(
        "mark-redraw-within-slack",
        MARKED,
        pane("x", output=20 - rc.MARK_SLACK),
        False,
        (Activity.WAITING, T - 20),
    ),
    ActivityCase(
        "output-after-mark-old",
        MARKED,
        pane("x", output=10),
        False,
        (Activity.IDLE, T - 10),
    ),
    ActivityCase(
        "output-after-mark-new", MARKED, pane("x", output=1), False, (Activity.WORKING, T - 1)
    ),
    ActivityCase(
        "mark-without-time-ignored",
        dataclasses.replace(MARKED, activity_at=None),
        pane("x"),
        False,
        (Activity.UNKNOWN, None),
    ),
]


@pytest.mark.parametrize("case", ACTIVITY_CASES, ids=[c.test_id for c in ACTIVITY_CASES])
def test_derive_activity(case: ActivityCase) -> None:
    got = derive_activity(case.record, case.pane, T, case.waiting)
    assert got == case.expected


def test_derive_activity_working_seconds_is_per_call() -> None:
    """A profile's own working window replaces the default."""
    p = pane("x", output=10)
    assert derive_activity(rec(A), p, T, False)[0] is Activity.IDLE  # type: ignore[index]
    assert derive_activity(rec(A), p, T, False, 15.0) == (Activity.WORKING, T - 10)


# --- the data model of a successful apply -------------------------------------------------

Facts = dict[int, ProcessFacts]
World = tuple[list[Session], dict[str, LivePane], Facts]


def apply_model(
    records: Sequence[Session],
    world: Mapping[str, LivePane],
    facts: Mapping[int, ProcessFacts],
    actions: Sequence[Action],
) -> World:
    """What a successful apply does, on plain data (updated_at becomes NOW, as the store
    writes it; a report changes nothing). Process facts stay as they were."""
    by_id = {r.id: r for r in records}
    sessions = dict(world)
    after = dict(facts)
    for action in actions:
        if action.kind in MARK_STATUS:
            by_id[action.session_id] = by_id[action.session_id].transition(
                MARK_STATUS[action.kind], exit_code=action.exit_code, updated_at=format_time(NOW)
            )
        elif action.kind is Kind.REMOVE_RECORD:
            del by_id[action.session_id]
        elif action.kind in SESSION_KINDS:
            [name] = [n for n, p in sessions.items() if p.session_id == action.tmux_session_id]
            if action.kind is Kind.KILL_SESSION:
                del sessions[name]
            else:
                sessions[name] = dataclasses.replace(sessions[name], orphan_tag=True)
    return list(by_id.values()), sessions, after


@pytest.mark.parametrize("case", CASES, ids=[c.test_id for c in CASES])
def test_replan_after_apply_changes_nothing(case: Case) -> None:
    """After a plan's changes are made, planning again (grace 0: nothing is too young)
    finds nothing more to change: a second reconcile right after the first is quiet."""
    policy = dataclasses.replace(case.policy, grace=0)
    world = live(*case.panes)
    facts = dict(case.facts or {})
    protected = case.protected
    actions = plan(
        case.records, world, NOW, policy, store_id=case.store_id, protected=protected, facts=facts
    )
    records, world, facts = apply_model(case.records, world, facts, actions)
    again = plan(
        records, world, NOW, policy, store_id=case.store_id, protected=protected, facts=facts
    )
    assert [a for a in again if a.kind is not Kind.REPORT] == []


# --- properties over random worlds --------------------------------------------------------

POOL = ["aaa001", "bbb002", "ccc003", "ddd004"]


@st.composite
def worlds(draw: st.DrawFn) -> World:
    record_ids = draw(st.lists(st.sampled_from(POOL), unique=True, max_size=4))
    records = [
        rec(
            sid,
            draw(st.sampled_from(list(Status))),
            age=draw(st.sampled_from([0.0, 10.0, 30.0, OLD])),
            pid=draw(st.sampled_from([None, PID, 200])),
            ctime=draw(st.sampled_from([None, CTIME])),
            session=draw(st.sampled_from(["default", None, f"amux-{POOL[0]}"])),
        )
        for sid in record_ids
    ]
    names = draw(
        st.lists(st.sampled_from([*(f"amux-{i}" for i in POOL), "amux-foo", "work"]), unique=True)
    )
    panes = [
        pane(
            name,
            draw(st.sampled_from(["default", None, *POOL, "BAD"])),
            store=draw(st.sampled_from([STORE, STORE, OTHER_STORE, None])),
            age=draw(st.sampled_from([0.0, 10.0, OLD])),
            pid=draw(st.sampled_from([None, PID, 200, 300])),
            dead=draw(st.booleans()),
            code=draw(st.sampled_from([None, 0, 3])),
            signal=draw(st.sampled_from([None, 9])),
            died=draw(st.sampled_from([None, 1.0, 60.0])),
            tagged=draw(st.booleans()),
        )
        for name in names
    ]
    facts = {
        pid: ProcessFacts(
            draw(st.sampled_from([None, CTIME, CTIME + 100])), zombie=draw(st.booleans())
        )
        for pid in (PID, 200)
    }
    return records, live(*panes), facts


policies = st.builds(
    Policy,
    remove=st.booleans(),
    grace=st.sampled_from([0.0, 30.0]),
    exits_skip_grace=st.booleans(),
)
store_ids = st.sampled_from([STORE, STORE, STORE, None])
protected_ids = st.frozensets(st.sampled_from(POOL), max_size=2)
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(world=worlds(), policy=policies, store_id=store_ids, protected=protected_ids)
def test_plan_is_pure_and_deterministic(
    world: World, policy: Policy, store_id: str | None, protected: frozenset[str]
) -> None:
    """Same input, same output, inputs untouched; a tuple and a copy give the same plan."""
    saved = copy.deepcopy(world)

    def run(world: World) -> list[Action]:
        records, sessions, facts = world
        return plan(
            records, sessions, NOW, policy, store_id=store_id, protected=protected, facts=facts
        )

    first = run(world)
    assert run(world) == first
    assert world == saved
    assert run((tuple(saved[0]), dict(saved[1]), dict(saved[2]))) == first


@SETTINGS
@given(world=worlds(), policy=policies, store_id=store_ids, protected=protected_ids)
def test_plan_touches_only_what_the_store_owns(
    world: World, policy: Policy, store_id: str | None, protected: frozenset[str]
) -> None:
    """A foreign session (other store, no store tag, no or another id, another name) never
    gets an action; a protected id never gets one; ended records never change status;
    nothing young is acted on (but a look recording an exit)."""
    records, sessions, facts = world
    actions = plan(
        records, sessions, NOW, policy, store_id=store_id, protected=protected, facts=facts
    )
    foreign = {p.session_id for p in sessions.values() if owner_of(p, store_id) is None}
    by_id = {r.id: r for r in records}
    for action in actions:
        assert action.session_id not in protected
        assert action.tmux_session_id not in foreign
        if action.kind in SESSION_KINDS:
            [target] = [p for p in sessions.values() if p.session_id == action.tmux_session_id]
            assert owner_of(target, store_id) == action.session_id
            assert target.session_name == f"amux-{action.session_id}"
            assert store_id is not None and target.store_id == store_id
            if action.session_id not in by_id:
                assert NOW.timestamp() - target.session_created >= policy.grace
        if action.kind is Kind.TAG_SESSION:
            assert not policy.remove
        record = by_id.get(action.session_id)
        if record is not None and record.status.ended:
            assert action.kind in (Kind.REPORT, Kind.KILL_SESSION)
        if record is not None and not record.status.ended and action.kind is not Kind.KILL_SESSION:
            age = (NOW - dt.datetime.fromisoformat(record.updated_at)).total_seconds()
            if age < policy.grace:
                assert policy.exits_skip_grace
                assert action.kind in (Kind.MARK_COMPLETED, Kind.MARK_FAILED, Kind.MARK_STOPPED)
        if action.kind is Kind.REMOVE_RECORD:
            assert policy.remove


@SETTINGS
@given(world=worlds(), policy=policies, store_id=store_ids, protected=protected_ids)
def test_plan_is_idempotent(
    world: World, policy: Policy, store_id: str | None, protected: frozenset[str]
) -> None:
    """plan -> apply the changes on the data model -> plan again (same policy, and with
    grace 0 so nothing is too young) finds nothing more to change (reports may repeat)."""
    records, sessions, facts = world
    for pol in (policy, dataclasses.replace(policy, grace=0)):
        kw = {"store_id": store_id, "protected": protected}
        actions = plan(records, sessions, NOW, pol, facts=facts, **kw)
        records2, sessions2, facts2 = apply_model(records, sessions, facts, actions)
        again = plan(records2, sessions2, NOW, pol, facts=facts2, **kw)
        assert [a for a in again if a.kind is not Kind.REPORT] == [], (actions, again)


# --- reports never change anything --------------------------------------------------------


class _Recorder:
    """Effects that fail the test if used for a reported id, and count every use."""

    def __init__(self, reported: set[str]) -> None:
        self.reported = reported
        self.calls: list[tuple[str, object]] = []

    def _touch(self, what: str, sid: object) -> None:
        assert sid not in self.reported, f"{what} of reported session {sid}"
        self.calls.append((what, sid))

    def effects(self, records: Mapping[str, Session]) -> rc.Effects:
        def get(sid: str) -> Session:
            self._touch("get", sid)
            if sid not in records:
                raise exc.SessionNotFound(sid)
            return records[sid]

        def update(sid: str, mutate: object) -> Session:
            self._touch("update", sid)
            return records[sid]

        def delete(sid: str, check: object) -> Session:
            self._touch("delete", sid)
            return records[sid]

        @contextlib.contextmanager
        def lock(sid: str) -> Iterator[None]:
            self._touch("lock", sid)
            yield

        def tmux(kills: Sequence[str], tags: Sequence[str]) -> dict[str, str]:
            for target in [*kills, *tags]:
                self._touch("tmux", target)
            return dict.fromkeys([*kills, *tags], "")

        def list_live() -> dict[str, LivePane]:
            self.calls.append(("list", None))
            return {}

        return rc.Effects(
            STORE, list_live, update, delete, get, lock, tmux, lambda pid: ProcessFacts(None)
        )


reports = st.lists(
    st.builds(
        Action,
        kind=st.just(Kind.REPORT),
        session_id=st.sampled_from(POOL[:2]),
        reason=st.text(max_size=20),
        tmux_session=st.sampled_from([None, f"amux-{POOL[0]}"]),
        tmux_session_id=st.sampled_from([None, "$1", "$2"]),
    ),
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(reports=reports)
def test_reports_alone_ask_and_change_nothing(reports: list[Action]) -> None:
    """A plan of reports only: apply does not even list tmux, and nothing is done."""
    recorder = _Recorder(set())
    outcomes = rc.apply(reports, recorder.effects({}), REMOVE)
    assert recorder.calls == []
    assert [o.action for o in outcomes] == reports
    assert not any(o.done or o.failed for o in outcomes)


@settings(max_examples=200, deadline=None)
@given(reports=reports, policy=policies)
def test_reports_beside_changes_are_left_alone(reports: list[Action], policy: Policy) -> None:
    """Reports mixed into a plan of real changes: their sessions and records are never
    read, locked, written or sent to tmux (the recorder fails the test if they are)."""
    other = rec(POOL[2])
    changes = [
        Action(Kind.MARK_ORPHANED, other.id, "tmux session is gone", other.tmux_session),
        Action(Kind.TAG_SESSION, POOL[3], "no record", f"amux-{POOL[3]}", "$9"),
    ]
    recorder = _Recorder({r.session_id for r in reports} | {r.tmux_session_id for r in reports})
    outcomes = rc.apply([*reports, *changes], recorder.effects({other.id: other}), policy)
    assert [o.action for o in outcomes] == [*reports, *changes]
    assert not any(o.done for o in outcomes[: len(reports)])
