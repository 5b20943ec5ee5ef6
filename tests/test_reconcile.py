"""reconcile.plan: every branch of judge / match / judge_session, purity and idempotency.

Pure tests over plain data: no tmux, no files.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import itertools
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from amux_tmux.model import Session, Status, format_time
from amux_tmux.reconcile import (
    MARK_STATUS,
    Action,
    Kind,
    Policy,
    judge_session,
    match,
    owner_of,
    plan,
)
from amux_tmux.model import LivePane

NOW = dt.datetime(2024, 6, 1, 12, 0, 0, tzinfo=dt.UTC)
OLD = 3600.0
SOCK = "/tmp/tmux-0/amux"
PID = 100
CTIME = 1000.0

MARK = Policy(remove=False, grace=30.0)
REMOVE = Policy(remove=True, grace=30.0)
LOOK = Policy(remove=False, grace=30.0, exits_skip_grace=True)

_ids = itertools.count(1)


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
) -> Session:
    return Session(
        id=sid,
        status=status,
        created_at=ago(age + 5),
        updated_at=ago(age),
        tmux_socket=SOCK,
        tmux_session=f"amux-{sid}" if session == "default" else session,
        pid=pid,
        pid_create_time=ctime,
    )


def pane(
    name: str,
    owner: str | None = "default",
    *,
    age: float = OLD,
    pid: int | None = PID,
    dead: bool = False,
    code: int | None = None,
    tagged: bool = False,
    signal: int | None = None,
    died: float | None = None,
) -> LivePane:
    if owner == "default":
        owner = name.removeprefix("amux-") if name.startswith("amux-") else None
    n = next(_ids)
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
    )


def live(*panes: LivePane) -> dict[str, LivePane]:
    return {p.session_name: p for p in panes}


Expected = tuple[Kind, str, int | None, str]  # kind, id, exit code, reason fragment


def _summary(actions: Sequence[Action]) -> list[tuple[Kind, str, int | None]]:
    return [(a.kind, a.session_id, a.exit_code) for a in actions]


def case(
    id_: str,
    records: Sequence[Session],
    panes: Sequence[LivePane],
    policy: Policy,
    expected: Sequence[Expected],
    ctimes: Mapping[int, float | None] | None = None,
) -> object:
    return pytest.param(list(records), live(*panes), policy, ctimes, list(expected), id=id_)


A = "abc001"
B = "bcd002"

CASES = [
    # --- direction 1: record with a live, alive, matching pane ---
    case("alive-mark", [rec(A)], [pane(f"amux-{A}")], MARK, [], {PID: CTIME}),
    case("alive-remove", [rec(A)], [pane(f"amux-{A}")], REMOVE, [], {PID: CTIME}),
    case("alive-no-ctimes-given", [rec(A)], [pane(f"amux-{A}")], MARK, []),
    case("orphaned-alive-mark", [rec(A, Status.ORPHANED)], [pane(f"amux-{A}")], MARK, []),
    case("stopping-alive", [rec(A, Status.STOPPING)], [pane(f"amux-{A}")], MARK, []),
    # --- dead pane: the exit status is known ---
    case(
        "dead-exit0-completed",
        [rec(A)],
        [pane(f"amux-{A}", dead=True, code=0)],
        MARK,
        [(Kind.MARK_COMPLETED, A, 0, "status 0")],
    ),
    case(
        "dead-exit0-remove-still-marks",
        [rec(A)],
        [pane(f"amux-{A}", dead=True, code=0)],
        REMOVE,
        [(Kind.MARK_COMPLETED, A, 0, "status 0")],
    ),
    case(
        "dead-exit3-failed",
        [rec(A)],
        [pane(f"amux-{A}", dead=True, code=3)],
        MARK,
        [(Kind.MARK_FAILED, A, 3, "status 3")],
    ),
    case(
        "dead-exit-negative",
        [rec(A)],
        [pane(f"amux-{A}", dead=True, code=-1)],
        MARK,
        [(Kind.MARK_FAILED, A, -1, "status -1")],
    ),
    case(
        "dead-killed-by-signal",
        [rec(A)],
        [pane(f"amux-{A}", dead=True, signal=9, died=60)],
        REMOVE,
        [(Kind.MARK_FAILED, A, None, "signal 9")],
    ),
    case(
        "dead-no-status-process-gone",
        [rec(A)],
        [pane(f"amux-{A}", dead=True)],
        MARK,
        [(Kind.MARK_FAILED, A, None, "did not report")],
        {PID: None},
    ),
    case(
        "dead-no-status-not-reaped-yet",
        [rec(A)],
        [pane(f"amux-{A}", dead=True)],
        MARK,
        [],
        {PID: CTIME + 0.5},
    ),
    case(
        "dead-no-status-not-reaped-ctime-unrecorded",
        [rec(A, ctime=None)],
        [pane(f"amux-{A}", dead=True)],
        MARK,
        [],
        {PID: CTIME},
    ),
    case(
        "dead-no-status-pid-reused",
        [rec(A)],
        [pane(f"amux-{A}", dead=True)],
        MARK,
        [(Kind.MARK_FAILED, A, None, "did not report")],
        {PID: CTIME + 500},
    ),
    case(
        "dead-no-status-but-dead-time",
        [rec(A)],
        [pane(f"amux-{A}", dead=True, died=60)],
        MARK,
        [(Kind.MARK_FAILED, A, None, "did not report")],
        {PID: CTIME},
    ),
    case(
        "orphaned-dead-exit0",
        [rec(A, Status.ORPHANED)],
        [pane(f"amux-{A}", dead=True, code=0)],
        MARK,
        [(Kind.MARK_COMPLETED, A, 0, "status 0")],
    ),
    case(
        "stopping-dead-exit2",
        [rec(A, Status.STOPPING)],
        [pane(f"amux-{A}", dead=True, code=2)],
        MARK,
        [(Kind.MARK_FAILED, A, 2, "status 2")],
    ),
    case(
        "dead-pane-pid-mismatch-is-still-an-exit",
        [rec(A)],
        [pane(f"amux-{A}", dead=True, code=0, pid=999)],
        MARK,
        [(Kind.MARK_COMPLETED, A, 0, "status 0")],
    ),
    # --- session gone ---
    case("gone-mark", [rec(A)], [], MARK, [(Kind.MARK_ORPHANED, A, None, "gone")]),
    case("gone-remove", [rec(A)], [], REMOVE, [(Kind.REMOVE_RECORD, A, None, "gone")]),
    case("gone-orphaned-mark-again", [rec(A, Status.ORPHANED)], [], MARK, []),
    case(
        "gone-orphaned-remove",
        [rec(A, Status.ORPHANED)],
        [],
        REMOVE,
        [(Kind.REMOVE_RECORD, A, None, "gone")],
    ),
    case(
        "gone-stopping-mark",
        [rec(A, Status.STOPPING)],
        [],
        MARK,
        [(Kind.MARK_STOPPED, A, None, "interrupted")],
    ),
    case(
        "gone-stopping-remove",
        [rec(A, Status.STOPPING)],
        [],
        REMOVE,
        [(Kind.MARK_STOPPED, A, None, "interrupted")],
    ),
    case(
        "record-without-session-name",
        [rec(A, session=None)],
        [pane(f"amux-{A}")],
        MARK,
        [(Kind.MARK_ORPHANED, A, None, "gone")],
    ),
    case(
        "record-without-session-name-remove",
        [rec(A, session=None)],
        [pane(f"amux-{A}")],
        REMOVE,
        [(Kind.REMOVE_RECORD, A, None, "gone"), (Kind.KILL_SESSION, A, None, "no record")],
    ),
    case(
        "record-names-another-session",
        [rec(A, session=f"amux-{B}")],
        [pane(f"amux-{B}", owner=B)],
        MARK,
        [(Kind.MARK_ORPHANED, A, None, "gone"), (Kind.TAG_SESSION, B, None, "no record")],
    ),
    case(
        "same-name-untagged-is-not-ours",
        [rec(A)],
        [pane(f"amux-{A}", owner=None)],
        MARK,
        [(Kind.MARK_ORPHANED, A, None, "gone")],
    ),
    case(
        "same-name-other-tag-is-not-ours",
        [rec(A)],
        [pane(f"amux-{A}", owner=B)],
        REMOVE,
        [(Kind.REMOVE_RECORD, A, None, "gone")],
    ),
    # --- pid gone or reused ---
    case(
        "pid-mismatch-mark",
        [rec(A)],
        [pane(f"amux-{A}", pid=200)],
        MARK,
        [(Kind.MARK_ORPHANED, A, None, "not the recorded pid")],
        {PID: CTIME},
    ),
    case(
        "pid-mismatch-remove",
        [rec(A)],
        [pane(f"amux-{A}", pid=200)],
        REMOVE,
        [
            (Kind.REMOVE_RECORD, A, None, "not the recorded pid"),
            (Kind.KILL_SESSION, A, None, "no record"),
        ],
    ),
    case(
        "pid-mismatch-already-orphaned",
        [rec(A, Status.ORPHANED)],
        [pane(f"amux-{A}", pid=200)],
        MARK,
        [],
    ),
    case(
        "pid-reused-mark",
        [rec(A)],
        [pane(f"amux-{A}")],
        MARK,
        [(Kind.MARK_ORPHANED, A, None, "reused")],
        {PID: CTIME + 500},
    ),
    case(
        "pid-reused-remove",
        [rec(A)],
        [pane(f"amux-{A}")],
        REMOVE,
        [(Kind.REMOVE_RECORD, A, None, "reused"), (Kind.KILL_SESSION, A, None, "no record")],
        {PID: CTIME - 500},
    ),
    case(
        "pid-ctime-within-slack",
        [rec(A)],
        [pane(f"amux-{A}")],
        MARK,
        [],
        {PID: CTIME + 0.9},
    ),
    case(
        "pid-ctime-just-over-slack",
        [rec(A)],
        [pane(f"amux-{A}")],
        MARK,
        [(Kind.MARK_ORPHANED, A, None, "reused")],
        {PID: CTIME + 1.1},
    ),
    # As implemented: "no such process" (None) is no evidence against a live pane.
    case("pid-gone-per-psutil", [rec(A)], [pane(f"amux-{A}")], MARK, [], {PID: None}),
    case("record-pid-unknown", [rec(A, pid=None)], [pane(f"amux-{A}")], MARK, [], {PID: 5.0}),
    case("record-ctime-unknown", [rec(A, ctime=None)], [pane(f"amux-{A}")], MARK, [], {PID: 5.0}),
    case("pane-pid-unknown", [rec(A)], [pane(f"amux-{A}", pid=None)], MARK, [], {PID: CTIME}),
    # --- grace ---
    case("young-gone-mark", [rec(A, age=10)], [], MARK, []),
    case("young-gone-remove", [rec(A, age=10)], [], REMOVE, []),
    case("young-stopping-gone", [rec(A, Status.STOPPING, age=10)], [], MARK, []),
    case(
        "young-dead-reconciler-waits",
        [rec(A, age=10)],
        [pane(f"amux-{A}", dead=True, code=0)],
        MARK,
        [],
    ),
    case(
        "young-dead-look-records-exit",
        [rec(A, age=10)],
        [pane(f"amux-{A}", dead=True, code=4)],
        LOOK,
        [(Kind.MARK_FAILED, A, 4, "status 4")],
    ),
    case("young-gone-look-waits", [rec(A, age=10)], [], LOOK, []),
    case(
        "young-pid-reused",
        [rec(A, age=10)],
        [pane(f"amux-{A}")],
        MARK,
        [],
        {PID: CTIME + 500},
    ),
    case(
        "grace-boundary-acts",
        [rec(A, age=30)],
        [],
        MARK,
        [(Kind.MARK_ORPHANED, A, None, "gone")],
    ),
    case(
        "grace-zero-acts-at-once",
        [rec(A, age=0)],
        [],
        Policy(grace=0),
        [(Kind.MARK_ORPHANED, A, None, "gone")],
    ),
    case("grace-huge", [rec(A)], [], Policy(grace=OLD * 2), []),
    # --- starts that never finished ---
    case("starting-young", [rec(A, Status.STARTING, age=5)], [], MARK, []),
    case("created-young-remove", [rec(A, Status.CREATED, age=5)], [], REMOVE, []),
    case(
        "starting-young-dead-look",
        [rec(A, Status.STARTING, age=5)],
        [pane(f"amux-{A}", dead=True, code=0)],
        LOOK,
        [],
    ),
    case(
        "starting-old-gone-mark",
        [rec(A, Status.STARTING)],
        [],
        MARK,
        [(Kind.MARK_FAILED, A, None, "starting for longer")],
    ),
    case(
        "starting-old-gone-remove",
        [rec(A, Status.STARTING)],
        [],
        REMOVE,
        [(Kind.MARK_FAILED, A, None, "starting for longer")],
    ),
    case(
        "created-old",
        [rec(A, Status.CREATED, pid=None, ctime=None)],
        [],
        MARK,
        [(Kind.MARK_FAILED, A, None, "created for longer")],
    ),
    case(
        "starting-old-live-mark",
        [rec(A, Status.STARTING)],
        [pane(f"amux-{A}")],
        MARK,
        [(Kind.MARK_FAILED, A, None, "starting for longer")],
    ),
    case(
        "starting-old-live-remove-kills-first",
        [rec(A, Status.STARTING)],
        [pane(f"amux-{A}")],
        REMOVE,
        [
            (Kind.KILL_SESSION, A, None, "never finished"),
            (Kind.MARK_FAILED, A, None, "starting for longer"),
        ],
    ),
    case(
        "starting-old-dead-pane",
        [rec(A, Status.STARTING)],
        [pane(f"amux-{A}", dead=True, code=0)],
        MARK,
        [(Kind.MARK_FAILED, A, None, "starting for longer")],
    ),
    # --- direction 2: live session without a record ---
    case(
        "owned-no-record-mark-tags",
        [],
        [pane(f"amux-{B}")],
        MARK,
        [(Kind.TAG_SESSION, B, None, "no record")],
    ),
    case(
        "owned-no-record-remove-kills",
        [],
        [pane(f"amux-{B}")],
        REMOVE,
        [(Kind.KILL_SESSION, B, None, "no record")],
    ),
    case("owned-already-tagged-mark", [], [pane(f"amux-{B}", tagged=True)], MARK, []),
    case(
        "owned-already-tagged-remove",
        [],
        [pane(f"amux-{B}", tagged=True)],
        REMOVE,
        [(Kind.KILL_SESSION, B, None, "no record")],
    ),
    case(
        "owned-dead-pane-no-record",
        [],
        [pane(f"amux-{B}", dead=True, code=1)],
        MARK,
        [(Kind.TAG_SESSION, B, None, "no record")],
    ),
    case("owned-young-mark", [], [pane(f"amux-{B}", age=5)], MARK, []),
    case("owned-young-remove", [], [pane(f"amux-{B}", age=5)], REMOVE, []),
    case(
        "owned-grace-boundary",
        [],
        [pane(f"amux-{B}", age=30)],
        REMOVE,
        [(Kind.KILL_SESSION, B, None, "no record")],
    ),
    case("owned-with-record", [rec(B)], [pane(f"amux-{B}")], REMOVE, []),
    case(
        "owned-with-ended-record",
        [rec(B, Status.COMPLETED)],
        [pane(f"amux-{B}")],
        REMOVE,
        [],
    ),
    case(
        "owned-with-young-record",
        [rec(B, Status.STARTING, age=1)],
        [pane(f"amux-{B}")],
        REMOVE,
        [],
    ),
    case("user-amux-foo-mark", [], [pane("amux-foo", owner=None)], MARK, []),
    case("user-amux-foo-remove", [], [pane("amux-foo", owner=None)], REMOVE, []),
    case("user-amux-id-no-tag", [], [pane(f"amux-{B}", owner=None)], REMOVE, []),
    case("tag-name-mismatch", [], [pane("amux-zzz999", owner="abc123")], REMOVE, []),
    case("tag-on-non-amux-name", [], [pane("work", owner="abc123")], REMOVE, []),
    case("tag-invalid-id", [], [pane("amux-BAD", owner="BAD")], REMOVE, []),
    case("tag-traversal-id", [], [pane("amux-../x", owner="../x")], REMOVE, []),
    case("tag-empty", [], [pane("amux-", owner="")], REMOVE, []),
    # --- several at once: records first, then sessions, in listing order ---
    case(
        "mixed-world",
        [rec(A), rec("cde003", Status.COMPLETED), rec("def004", age=1)],
        [
            pane(f"amux-{B}"),
            pane("amux-foo", owner=None),
            pane("amux-efg005", tagged=True),
            pane("amux-fgh006"),
        ],
        MARK,
        [
            (Kind.MARK_ORPHANED, A, None, "gone"),
            (Kind.TAG_SESSION, B, None, "no record"),
            (Kind.TAG_SESSION, "fgh006", None, "no record"),
        ],
    ),
]


@pytest.mark.parametrize(("records", "world", "policy", "ctimes", "expected"), CASES)
def test_plan_branches(
    records: list[Session],
    world: dict[str, LivePane],
    policy: Policy,
    ctimes: Mapping[int, float | None] | None,
    expected: list[Expected],
) -> None:
    """Each branch of judge / match / judge_session gives exactly the expected actions."""
    actions = plan(records, world, NOW, policy, ctimes)
    assert _summary(actions) == [(k, sid, code) for k, sid, code, _ in expected]
    for action, (_, _, _, fragment) in zip(actions, expected, strict=True):
        assert fragment in action.reason
        if action.kind in (Kind.TAG_SESSION, Kind.KILL_SESSION):
            # Session actions always carry the exact $id of a session amux owns.
            target = next(p for p in world.values() if p.session_id == action.tmux_session_id)
            assert owner_of(target) == action.session_id
            assert action.tmux_session == target.session_name


@pytest.mark.parametrize("status", [Status.STOPPED, Status.COMPLETED, Status.FAILED])
@pytest.mark.parametrize("policy", [MARK, REMOVE, LOOK, Policy(grace=0)], ids=str)
@pytest.mark.parametrize("state", ["gone", "alive", "dead", "stale"])
def test_ended_records_are_never_acted_on(status: Status, policy: Policy, state: str) -> None:
    """Stopped, completed and failed records are final whatever tmux shows."""
    record = rec(A, status)
    panes = {
        "gone": [],
        "alive": [pane(f"amux-{A}")],
        "dead": [pane(f"amux-{A}", dead=True, code=9)],
        "stale": [pane(f"amux-{A}", pid=4242)],
    }[state]
    assert plan([record], live(*panes), NOW, policy, {PID: CTIME + 99}) == []


def test_action_fields_name_the_session() -> None:
    """Marks carry the record's session name and the live $id (None when it is gone)."""
    p = pane(f"amux-{A}", dead=True, code=0)
    [done] = plan([rec(A)], live(p), NOW, MARK)
    assert (done.tmux_session, done.tmux_session_id) == (f"amux-{A}", p.session_id)
    [gone] = plan([rec(B)], {}, NOW, MARK)
    assert (gone.tmux_session, gone.tmux_session_id) == (f"amux-{B}", None)
    assert gone.to_dict() == {
        "action": "mark-orphaned",
        "id": B,
        "tmux_session": f"amux-{B}",
        "tmux_session_id": None,
        "reason": "tmux session is gone",
        "exit_code": None,
    }


def test_match_requires_ownership() -> None:
    """match pairs a record only with the session named after it AND tagged with its id."""
    mine = pane(f"amux-{A}")
    records = [rec(A), rec(B), rec("cde003", session=None)]
    world = live(mine, pane(f"amux-{B}", owner=None), pane("amux-cde003"))
    assert match(records, world) == {A: mine}


def test_judge_session_accepts_any_iterable_of_known_ids() -> None:
    """known_ids may be a list or a set."""
    p = pane(f"amux-{B}")
    assert judge_session(p, [B], NOW, REMOVE) == []
    assert judge_session(p, {A}, NOW, REMOVE)[0].kind is Kind.KILL_SESSION


# --- purity ------------------------------------------------------------------------------


def _big_world() -> tuple[list[Session], dict[str, LivePane], dict[int, float | None]]:
    records = [
        rec(A),
        rec(B, Status.STARTING),
        rec("cde003", Status.STOPPING),
        rec("def004", Status.ORPHANED),
        rec("efg005", pid=300),
        rec("fgh006", age=1),
    ]
    world = live(
        pane(f"amux-{B}"),
        pane("amux-efg005", pid=300),
        pane("amux-ghi007"),
        pane("amux-hij008", tagged=True),
        pane("amux-foo", owner=None),
        pane("amux-ijk009", dead=True, code=0),
    )
    return records, world, {PID: CTIME, 300: CTIME + 50}


@pytest.mark.parametrize("policy", [MARK, REMOVE, LOOK], ids=["mark", "remove", "look"])
def test_plan_is_pure(policy: Policy) -> None:
    """Same input, same output; inputs are not mutated."""
    records, world, ctimes = _big_world()
    saved = copy.deepcopy((records, world, ctimes))
    first = plan(records, world, NOW, policy, ctimes)
    second = plan(records, world, NOW, policy, ctimes)
    assert first == second
    assert first  # the world is not trivially consistent
    assert (records, world, ctimes) == saved
    # Input order is output order: a generator of records gives the same plan as a list.
    assert plan(tuple(records), dict(world), NOW, policy, dict(ctimes)) == first


# --- idempotency on the plain data model ------------------------------------------------


def apply_model(
    records: Sequence[Session], world: Mapping[str, LivePane], actions: Sequence[Action]
) -> tuple[list[Session], dict[str, LivePane]]:
    """What a successful apply does, on plain data (updated_at set to NOW, as the store does)."""
    by_id = {r.id: r for r in records}
    sessions = dict(world)
    for action in actions:
        if action.kind in MARK_STATUS:
            by_id[action.session_id] = by_id[action.session_id].transition(
                MARK_STATUS[action.kind],
                exit_code=action.exit_code,
                updated_at=format_time(NOW),
            )
        elif action.kind is Kind.REMOVE_RECORD:
            del by_id[action.session_id]
        else:
            [name] = [n for n, p in sessions.items() if p.session_id == action.tmux_session_id]
            if action.kind is Kind.KILL_SESSION:
                del sessions[name]
            else:
                sessions[name] = dataclasses.replace(sessions[name], orphan_tag=True)
    return list(by_id.values()), sessions


def _idempotency_cases() -> list[object]:
    return list(CASES)


@pytest.mark.parametrize(
    ("records", "world", "policy", "ctimes", "expected"), _idempotency_cases()
)
def test_replan_after_apply_is_empty(
    records: list[Session],
    world: dict[str, LivePane],
    policy: Policy,
    ctimes: Mapping[int, float | None] | None,
    expected: list[Expected],
) -> None:
    """Applying a plan's effects and planning again (grace 0: nothing is too young) plans
    nothing: a second reconcile right after the first has nothing to do."""
    policy = dataclasses.replace(policy, grace=0)
    actions = plan(records, world, NOW, policy, ctimes)
    records2, world2 = apply_model(records, world, actions)
    assert plan(records2, world2, NOW, policy, ctimes) == []


# --- properties over random worlds -------------------------------------------------------

POOL = ["aaa001", "bbb002", "ccc003", "ddd004"]


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[Session], dict[str, LivePane], dict[int, float | None]]:
    record_ids = draw(st.lists(st.sampled_from(POOL), unique=True, max_size=4))
    records = [
        rec(
            sid,
            draw(st.sampled_from(list(Status))),
            age=draw(st.sampled_from([0.0, 10.0, 30.0, OLD])),
            pid=draw(st.sampled_from([None, PID, 200])),
            ctime=draw(st.sampled_from([None, CTIME])),
            session=draw(st.sampled_from(["default", None])),
        )
        for sid in record_ids
    ]
    names = draw(
        st.lists(st.sampled_from([*(f"amux-{i}" for i in POOL), "amux-foo", "work"]), unique=True)
    )
    panes = [
        pane(
            name,
            draw(st.sampled_from(["default", None, *POOL])),
            age=draw(st.sampled_from([0.0, 10.0, OLD])),
            pid=draw(st.sampled_from([None, PID, 200])),
            dead=draw(st.booleans()),
            code=draw(st.sampled_from([None, 0, 3])),
            signal=draw(st.sampled_from([None, 9])),
            died=draw(st.sampled_from([None, 1.0, 60.0])),
            tagged=draw(st.booleans()),
        )
        for name in names
    ]
    ctimes = {
        PID: draw(st.sampled_from([None, CTIME, CTIME + 100])),
        200: draw(st.sampled_from([None, CTIME])),
    }
    return records, live(*panes), ctimes


policies = st.builds(
    Policy,
    remove=st.booleans(),
    grace=st.sampled_from([0.0, 30.0]),
    exits_skip_grace=st.booleans(),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds(), policy=policies)
def test_plan_properties(
    world: tuple[list[Session], dict[str, LivePane], dict[int, float | None]], policy: Policy
) -> None:
    """Pure; never touches a session amux does not own; never acts on anything young
    (except a look recording an exit); never acts on an ended record."""
    records, sessions, ctimes = world
    saved = copy.deepcopy(world)
    actions = plan(records, sessions, NOW, policy, ctimes)
    assert plan(records, sessions, NOW, policy, ctimes) == actions
    assert (records, sessions, ctimes) == saved
    by_id = {r.id: r for r in records}
    for action in actions:
        if action.kind in (Kind.TAG_SESSION, Kind.KILL_SESSION):
            [target] = [p for p in sessions.values() if p.session_id == action.tmux_session_id]
            assert owner_of(target) == action.session_id
            assert target.session_name == f"amux-{action.session_id}"
            if action.session_id not in by_id:
                assert NOW.timestamp() - target.session_created >= policy.grace
        record = by_id.get(action.session_id)
        if record is not None:
            assert not record.status.ended
            age = (NOW - dt.datetime.fromisoformat(record.updated_at)).total_seconds()
            if age < policy.grace:
                assert policy.exits_skip_grace
                assert action.kind in (Kind.MARK_COMPLETED, Kind.MARK_FAILED)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds(), remove=st.booleans())
def test_plan_is_idempotent(
    world: tuple[list[Session], dict[str, LivePane], dict[int, float | None]], remove: bool
) -> None:
    """plan -> apply on the data model -> plan gives nothing (grace 0), for random worlds.

    Worlds where --remove deletes a record while a session it owns is still live are left
    to the xfail tests (a known bug)."""
    records, sessions, ctimes = world
    policy = Policy(remove=remove, grace=0)
    actions = plan(records, sessions, NOW, policy, ctimes)
    owners = {owner_of(p) for p in sessions.values()}
    assume(not any(a.kind is Kind.REMOVE_RECORD and a.session_id in owners for a in actions))
    records2, sessions2 = apply_model(records, sessions, actions)
    assert plan(records2, sessions2, NOW, policy, ctimes) == []


def test_remove_of_stale_record_is_idempotent() -> None:
    """A stale record (pane runs another pid) under --remove: one run must finish the job."""
    records = [rec(A)]
    world = live(pane(f"amux-{A}", pid=200))
    actions = plan(records, world, NOW, REMOVE)
    assert _summary(actions)[0] == (Kind.REMOVE_RECORD, A, None)
    records2, world2 = apply_model(records, world, actions)
    assert plan(records2, world2, NOW, REMOVE) == []
