"""The session record: status machine, ids, timestamps and tolerant, checked (de)serialisation."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import re
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amux_tmux import exc
from amux_tmux.model import (
    ENDED,
    ID_RE,
    MAX_LABEL,
    TRANSITIONS,
    Activity,
    Session,
    Status,
    can_transition,
    format_time,
    generate_id,
    is_valid_id,
    parse_time,
    tmux_session_name,
    utcnow,
    validate_id,
    validate_label,
    validate_name,
)

S = Status

# The lifecycle written out independently of model.TRANSITIONS: (from, to) pairs allowed.
ALLOWED = {
    (S.CREATED, S.STARTING),
    (S.CREATED, S.STOPPING),
    (S.CREATED, S.FAILED),
    (S.CREATED, S.STOPPED),
    (S.STARTING, S.RUNNING),
    (S.STARTING, S.STOPPING),
    (S.STARTING, S.FAILED),
    (S.STARTING, S.STOPPED),
    (S.STARTING, S.COMPLETED),
    (S.STARTING, S.ORPHANED),
    (S.RUNNING, S.STOPPING),
    (S.RUNNING, S.STOPPED),
    (S.RUNNING, S.COMPLETED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.ORPHANED),
    (S.STOPPING, S.STOPPED),
    (S.STOPPING, S.COMPLETED),
    (S.STOPPING, S.FAILED),
    (S.STOPPING, S.ORPHANED),
    (S.ORPHANED, S.RUNNING),
    (S.ORPHANED, S.STOPPING),
    (S.ORPHANED, S.STOPPED),
    (S.ORPHANED, S.COMPLETED),
    (S.ORPHANED, S.FAILED),
}
ALL_PAIRS = [(a, b) for a, b in itertools.product(Status, Status) if a is not b]
REFUSED = [pair for pair in ALL_PAIRS if pair not in ALLOWED]
PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")
NOW = "2026-01-02T03:04:05.123456Z"


def session(**fields: object) -> Session:
    base: dict[str, object] = {
        "id": "abc123",
        "status": Status.CREATED,
        "created_at": NOW,
        "updated_at": NOW,
    }
    base.update(fields)
    return Session(**base)  # type: ignore[arg-type]


def full_dict(**fields: object) -> dict[str, object]:
    data = session().to_dict()
    data.update(fields)
    return data


# --- status machine ---------------------------------------------------------------------


def test_transition_table_matches_the_lifecycle() -> None:
    assert set(TRANSITIONS) == set(Status)
    table = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert table == ALLOWED


@pytest.mark.parametrize(("current", "target"), sorted(ALLOWED))
def test_allowed_transitions(current: Status, target: Status) -> None:
    assert can_transition(current, target)
    moved = session(status=current).transition(target, error="x")
    assert moved.status is target
    assert moved.error == "x"


@pytest.mark.parametrize(("current", "target"), REFUSED)
def test_refused_transitions(current: Status, target: Status) -> None:
    assert not can_transition(current, target)
    record = session(status=current)
    with pytest.raises(exc.InvalidTransition) as info:
        record.transition(target)
    assert info.value.exit_code == exc.EXIT_USAGE
    assert (info.value.current, info.value.target) == (current.value, target.value)
    assert record.status is current  # the original is untouched


@pytest.mark.parametrize("status", list(Status))
def test_same_status_transition_is_a_no_op_change(status: Status) -> None:
    moved = session(status=status).transition(status, exit_code=3)
    assert moved.status is status
    assert moved.exit_code == 3


def test_ended_states_have_no_way_out() -> None:
    assert {s for s in Status if s.ended} == set(ENDED) == {S.STOPPED, S.COMPLETED, S.FAILED}
    for status in ENDED:
        assert not TRANSITIONS[status]
    assert str(S.RUNNING) == "running"


# --- ids and names ---------------------------------------------------------------------

VALID_IDS = ["abc", "a1-", "0000000000", "3f2a9c01de", "a" * 64, "a--b", "123"]
INVALID_IDS = [
    "",
    "ab",
    "a" * 65,
    "ABC",
    "aBc",
    "-rf",
    "-ab",
    "=x",
    "=abc",
    "a b",
    "a/b",
    "../../etc/passwd",
    ".hidden",
    "abc\n",
    "abc_def",
    "abc.yaml",
    "\u0430bc",  # Cyrillic a
    "\uff41bc",  # full-width a
    "abc\x00",
]


@pytest.mark.parametrize("value", VALID_IDS)
def test_valid_ids(value: str) -> None:
    assert validate_id(value) == value
    assert is_valid_id(value)


@pytest.mark.parametrize("value", [*INVALID_IDS, None, 123, b"abc"])
def test_invalid_ids(value: object) -> None:
    assert not is_valid_id(value)
    with pytest.raises(exc.InvalidSessionId) as info:
        validate_id(value)
    assert info.value.exit_code == exc.EXIT_USAGE


def test_invalid_id_message_is_short_for_long_input() -> None:
    with pytest.raises(exc.InvalidSessionId) as info:
        validate_id("x" * 300)
    assert len(str(info.value)) < 200
    assert info.value.value == "x" * 300


@settings(max_examples=300)
@given(st.text(alphabet="abcz09-AZ_./ \n", max_size=70))
def test_id_validation_agrees_with_the_documented_regex(value: str) -> None:
    assert is_valid_id(value) == (PATTERN.fullmatch(value) is not None)
    assert is_valid_id(value) == (ID_RE.fullmatch(value) is not None)


@pytest.mark.parametrize("name", ["a", "My.Task_1-x", "A" * 64])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", ".x", "-x", "a b", "a/b", "A" * 65, "=x"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(exc.UsageError):
        validate_name(name)


def test_generate_id_skips_taken_candidates() -> None:
    seen: list[str] = []

    def exists(candidate: str) -> bool:
        seen.append(candidate)
        return len(seen) <= 3  # the first three are "taken"

    result = generate_id(exists)
    assert len(seen) == 4
    assert result == seen[-1]
    assert len(set(seen)) == 4
    assert validate_id(result) == result
    assert re.fullmatch(r"[0-9a-f]{10}", result)


def test_generate_id_gives_up_after_attempts() -> None:
    calls: list[str] = []

    def exists(candidate: str) -> bool:
        calls.append(candidate)
        return True

    with pytest.raises(exc.StoreError):
        generate_id(exists, attempts=7)
    assert len(calls) == 7


def test_generate_id_is_random() -> None:
    ids = {generate_id(lambda _c: False) for _ in range(200)}
    assert len(ids) == 200


def test_tmux_session_name() -> None:
    assert tmux_session_name("abc") == "amux-abc"


# --- time ------------------------------------------------------------------------------


def test_format_time_is_fixed_width_utc() -> None:
    moment = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert format_time(moment) == "2026-03-04T03:06:07.000000Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", utcnow())


@settings(max_examples=200)
@given(
    st.datetimes(
        min_value=dt.datetime(1970, 1, 2),
        max_value=dt.datetime(9998, 12, 31),
        timezones=st.sampled_from(
            [
                dt.UTC,
                dt.timezone(dt.timedelta(hours=5, minutes=30)),
                dt.timezone(-dt.timedelta(hours=8)),
            ]
        ),
    )
)
def test_time_round_trip(moment: dt.datetime) -> None:
    text = format_time(moment)
    parsed = parse_time(text)
    assert parsed == moment
    assert parsed.tzinfo is not None
    assert format_time(parsed) == text


@given(
    st.lists(
        st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(9998, 12, 31)),
        min_size=2,
        max_size=5,
    )
)
def test_formatted_times_sort_as_text(moments: list[dt.datetime]) -> None:
    aware = [m.replace(tzinfo=dt.UTC) for m in moments]
    texts = [format_time(m) for m in aware]
    assert sorted(texts) == [format_time(m) for m in sorted(aware)]


def test_parse_time_accepts_offsets_and_naive() -> None:
    assert parse_time("2026-01-01T00:00:00+02:00") == dt.datetime(2025, 12, 31, 22, tzinfo=dt.UTC)
    naive = parse_time("2026-01-01T00:00:00")
    assert naive.tzinfo is not None
    assert naive == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(ValueError):
        parse_time("yesterday")


# --- to_dict / from_dict ---------------------------------------------------------------

_text = st.text(max_size=20)
_opt_text = st.none() | _text
_time_text = st.datetimes(
    min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(9998, 12, 31)
).map(lambda m: format_time(m.replace(tzinfo=dt.UTC)))
_ids = st.from_regex(PATTERN, fullmatch=True)

sessions = st.builds(
    Session,
    id=_ids,
    status=st.sampled_from(Status),
    created_at=_time_text,
    updated_at=_time_text,
    name=_opt_text,
    agent_id=_opt_text,
    workspace_id=_opt_text,
    tmux_socket=_opt_text,
    tmux_session=_opt_text,
    tmux_session_id=_opt_text,
    pane_id=_opt_text,
    pid=st.none() | st.integers(min_value=0, max_value=2**31),
    pid_create_time=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    command=st.lists(_text, max_size=4).map(tuple),
    cwd=_opt_text,
    environment=st.dictionaries(_text, _text, max_size=4),
    exit_code=st.none() | st.integers(min_value=-255, max_value=255),
    error=_opt_text,
    started_at=st.none() | _time_text,
    stopped_at=st.none() | _time_text,
    revision=st.integers(min_value=0, max_value=2**40),
    schema=st.just(1),
)


@settings(max_examples=200)
@given(sessions)
def test_dict_round_trip(record: Session) -> None:
    data = record.to_dict()
    assert list(data) == [f.name for f in dataclasses.fields(Session) if f.name != "extra"]
    assert isinstance(data["status"], str)
    assert isinstance(data["command"], list)
    assert type(data["environment"]) is dict
    assert Session.from_dict(data) == record


def test_from_dict_fills_defaults() -> None:
    record = Session.from_dict(
        {"id": "abc", "status": "running", "created_at": NOW, "updated_at": NOW}
    )
    assert record.status is Status.RUNNING
    assert record.command == ()
    assert record.environment == {}
    assert record.revision == 0
    assert record.schema == 1


def test_from_dict_normalises_an_unquoted_yaml_timestamp() -> None:
    moment = dt.datetime(2026, 1, 2, 3, 4, 5, 123456)  # what YAML gives for an unquoted time
    record = Session.from_dict(full_dict(created_at=moment))
    assert record.created_at == NOW


class Rejected(NamedTuple):
    test_id: str
    fields: dict[str, object]
    says: str  # a fragment the message must hold


REJECTED = [
    Rejected("status-no", {"status": False}, "one of"),  # `status: no` in YAML 1.1
    Rejected("status-true", {"status": True}, "status"),
    Rejected("status-unknown", {"status": "paused"}, "one of"),
    Rejected("status-null", {"status": None}, "status"),
    Rejected("status-int", {"status": 1}, "status"),
    Rejected("id-upper", {"id": "ABC"}, "invalid id"),
    Rejected("id-path", {"id": "../etc"}, "invalid id"),
    Rejected("id-short-int", {"id": 12}, "invalid id"),
    Rejected("id-null", {"id": None}, "id"),
    Rejected("created-null", {"created_at": None}, "created_at"),
    Rejected("created-word", {"created_at": "tuesday"}, "2026-11-24T10:30:00Z"),
    Rejected("created-epoch", {"created_at": 1700000000}, "created_at"),
    Rejected("updated-list", {"updated_at": ["x"]}, "updated_at"),
    Rejected("started-text", {"started_at": "not a time"}, "started_at"),
    Rejected("overflow", {"created_at": "0001-01-01T00:00:00+14:00"}, "out of range"),
    Rejected(
        "overflow-dt",
        {"created_at": dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(-dt.timedelta(hours=5)))},
        "out of range",
    ),
    Rejected("pid-bool", {"pid": True}, "boolean"),
    Rejected("pid-float", {"pid": 1.5}, "fraction"),
    Rejected("pid-word", {"pid": "twelve"}, "whole number"),
    Rejected("exit-bool", {"exit_code": False}, "boolean"),
    Rejected("ctime-bool", {"pid_create_time": True}, "boolean"),
    Rejected("ctime-nan", {"pid_create_time": float("nan")}, "finite"),
    Rejected("ctime-word", {"pid_create_time": "soon"}, "finite"),
    Rejected("command-bool-item", {"command": ["yes"] and [True]}, "quotes"),
    Rejected("command-float-item", {"command": ["python", 3.10]}, "1.10"),
    Rejected("command-map", {"command": {"a": 1}}, "list"),
    Rejected("command-unbalanced", {"command": "echo 'oops"}, "as a list"),
    Rejected("env-float", {"environment": {"V": 3.10}}, "quotes"),
    Rejected("env-null-value", {"environment": {"A": None}}, "write ''"),
    Rejected("env-int-name", {"environment": {1: "a"}}, "name"),
    Rejected("env-list-item", {"environment": {"A": ["x"]}}, "list"),
    Rejected("env-bare-list", {"environment": ["A"]}, "map"),
    Rejected("env-text", {"environment": "A=1"}, "map"),
    Rejected("name-bool", {"name": False}, "quotes"),
    Rejected("name-float", {"name": 1.5}, "quotes"),
    Rejected("cwd-list", {"cwd": ["/"]}, "text"),
    Rejected("revision-null", {"revision": None}, "revision"),
    Rejected("revision-bool", {"revision": True}, "boolean"),
    Rejected("schema-float", {"schema": 1.0}, "schema"),
    Rejected("activity-unknown", {"activity": "sleeping"}, "one of"),
    Rejected("runs-text", {"runs": "none"}, "runs"),
    Rejected("runs-bad-status", {"runs": [{"status": "gone"}]}, "runs status"),
]


@pytest.mark.parametrize("case", REJECTED, ids=lambda c: c.test_id)
def test_from_dict_rejects_what_is_not_clear(case: Rejected) -> None:
    with pytest.raises(ValueError, match=re.escape(case.says)):
        Session.from_dict(full_dict(**case.fields))


class HandEdit(NamedTuple):
    test_id: str
    fields: dict[str, object]
    expect: dict[str, object]


D = dt.datetime
HAND_EDITS = [
    HandEdit("status-capital", {"status": "Running"}, {"status": Status.RUNNING}),
    HandEdit("status-padded", {"status": " STOPPED "}, {"status": Status.STOPPED}),
    HandEdit("activity-capital", {"activity": "Waiting"}, {"activity": Activity.WAITING}),
    HandEdit("name-int", {"name": 123}, {"name": "123"}),
    HandEdit("id-int", {"id": 123}, {"id": "123"}),
    HandEdit("pid-text", {"pid": "123"}, {"pid": 123}),
    HandEdit("exit-text", {"exit_code": "-1"}, {"exit_code": -1}),
    HandEdit("revision-text", {"revision": "7"}, {"revision": 7}),
    HandEdit("ctime-text", {"pid_create_time": "1.5"}, {"pid_create_time": 1.5}),
    HandEdit("ctime-int", {"pid_create_time": 12}, {"pid_create_time": 12.0}),
    HandEdit("command-line", {"command": "sleep 1000"}, {"command": ("sleep", "1000")}),
    HandEdit(
        "command-quoted-line",
        {"command": "claude -p 'fix the tests'"},
        {"command": ("claude", "-p", "fix the tests")},
    ),
    HandEdit("command-numbers", {"command": ["sleep", 1000]}, {"command": ("sleep", "1000")}),
    HandEdit("command-null", {"command": None}, {"command": ()}),
    HandEdit("env-null", {"environment": None}, {"environment": {}}),
    HandEdit(
        "env-scalars",
        {"environment": {"DEBUG": 1, "VERBOSE": True, "QUIET": False, "DAY": dt.date(2026, 1, 2)}},
        {"environment": {"DEBUG": "1", "VERBOSE": "true", "QUIET": "false", "DAY": "2026-01-02"}},
    ),
    HandEdit(
        "env-compose-list",
        {"environment": ["A=1", "B=x=y", "C="]},
        {"environment": {"A": "1", "B": "x=y", "C": ""}},
    ),
    HandEdit(
        "created-date",
        {"created_at": dt.date(2026, 1, 2)},
        {"created_at": "2026-01-02T00:00:00.000000Z"},
    ),
    HandEdit(
        "created-date-text",
        {"created_at": "2026-01-02"},
        {"created_at": "2026-01-02T00:00:00.000000Z"},
    ),
    HandEdit("created-naive", {"created_at": D(2026, 1, 2, 3, 4, 5, 123456)}, {"created_at": NOW}),
    HandEdit(
        "created-naive-text", {"created_at": "2026-01-02 03:04:05.123456"}, {"created_at": NOW}
    ),
    HandEdit(
        "created-offset", {"created_at": "2026-01-02T05:04:05.123456+02:00"}, {"created_at": NOW}
    ),
    HandEdit(
        "created-z-short",
        {"created_at": "2026-01-02T03:04:05Z"},
        {"created_at": "2026-01-02T03:04:05.000000Z"},
    ),
    HandEdit(
        "year-one",
        {"created_at": "0001-01-01T00:00:00Z"},
        {"created_at": "0001-01-01T00:00:00.000000Z"},
    ),
    HandEdit("runs-null", {"runs": None}, {"runs": ()}),
    HandEdit("notes", {"notes": "keep me"}, {"extra": {"notes": "keep me"}}),
    HandEdit(
        "extra-date", {"seen": dt.date(2026, 1, 2)}, {"extra": {"seen": dt.date(2026, 1, 2)}}
    ),
    HandEdit("extra-named-extra", {"extra": [1, 2]}, {"extra": {"extra": [1, 2]}}),
]


@pytest.mark.parametrize("case", HAND_EDITS, ids=lambda c: c.test_id)
def test_from_dict_accepts_hand_edits(case: HandEdit) -> None:
    record = Session.from_dict(full_dict(**case.fields))
    for field, value in case.expect.items():
        assert getattr(record, field) == value
        assert type(getattr(record, field)) is type(value)
    # Normalised in memory: writing it back and reading again changes nothing more.
    assert Session.from_dict(record.to_dict()) == record


@pytest.mark.parametrize("missing", ["id", "status", "created_at", "updated_at"])
def test_from_dict_rejects_missing_required(missing: str) -> None:
    data = full_dict()
    del data[missing]
    with pytest.raises(ValueError, match=missing):
        Session.from_dict(data)


@pytest.mark.parametrize("data", [None, [], "id: abc", 42, [("id", "abc")]])
def test_from_dict_rejects_non_mappings(data: object) -> None:
    with pytest.raises(ValueError):
        Session.from_dict(data)


def test_from_dict_accepts_int_as_float_and_keeps_exact_ints() -> None:
    record = Session.from_dict(full_dict(pid=0, pid_create_time=12, exit_code=-1))
    assert record.pid == 0
    assert record.pid_create_time == 12.0
    assert isinstance(record.pid_create_time, float)
    assert record.exit_code == -1


def test_records_are_immutable_and_evolve_copies() -> None:
    record = session()
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.status = Status.RUNNING  # type: ignore[misc]
    changed = record.evolve(name="n")
    assert changed.name == "n"
    assert record.name is None


# --- labels ----------------------------------------------------------------------------


class Label(NamedTuple):
    test_id: str
    value: str
    says: str | None  # None: accepted


LABELS = [
    Label("plain", "claude", None),
    Label("spaces-unicode", "Kläre's workspace ✓", None),
    Label("at-limit", "a" * MAX_LABEL, None),
    Label("too-long", "a" * (MAX_LABEL + 1), str(MAX_LABEL)),
    Label("huge", "w" * 130_000, "shorten"),
    Label("empty", "", "empty"),
    Label("newline", "a\nb", "U+000A"),
    Label("escape", "\x1b[31mred", "U+001B"),
    Label("nul", "a\x00", "U+0000"),
    Label("del", "a\x7f", "U+007F"),
    Label("c1", "a\x9b31m", "U+009B"),
    Label("line-separator", "a\u2028b", "U+2028"),
    Label("paragraph-separator", "a\u2029b", "U+2029"),
    Label("rlo", "abc\u202egpj.exe", "U+202E"),
    Label("isolate", "a\u2066b", "U+2066"),
    Label("tab", "a\tb", "U+0009"),
]


@pytest.mark.parametrize("case", LABELS, ids=lambda c: c.test_id)
def test_validate_label(case: Label) -> None:
    if case.says is None:
        assert validate_label("agent", case.value) == case.value
        return
    with pytest.raises(exc.UsageError, match=re.escape(case.says)) as info:
        validate_label("workspace", case.value)
    assert info.value.exit_code == exc.EXIT_USAGE
    assert "workspace" in str(info.value)
    assert len(str(info.value)) < 200


# --- times at the edges ----------------------------------------------------------------


def test_format_time_pads_early_years() -> None:
    assert format_time(dt.datetime(1, 1, 1, tzinfo=dt.UTC)) == "0001-01-01T00:00:00.000000Z"
    assert format_time(dt.datetime(999, 2, 3, 4, 5, 6, 7, tzinfo=dt.UTC)) == (
        "0999-02-03T04:05:06.000007Z"
    )


@pytest.mark.parametrize(
    "text", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "nonsense", ""]
)
def test_parse_time_raises_only_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


def test_parse_time_date_only_is_utc_midnight() -> None:
    assert parse_time("2026-01-02") == dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
