"""YAML codec: faithful round trips for records, only DecodeError for anything hostile."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import pathlib
import subprocess
import sys
from typing import NamedTuple

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amux_tmux.model import Session, Status, format_time
from amux_tmux.secrets import MASK
from amux_tmux.store import canonical, codec

NOW = "2026-01-02T03:04:05.123456Z"
_text = st.text(max_size=25)
_ids = st.from_regex(r"[a-z0-9][a-z0-9-]{2,20}", fullmatch=True)
_times = st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(9000, 1, 1)).map(
    lambda m: format_time(m.replace(tzinfo=dt.UTC))
)
records = st.builds(
    Session,
    id=_ids,
    status=st.sampled_from(Status),
    created_at=_times,
    updated_at=_times,
    name=st.none() | _text,
    agent_id=st.none() | _text,
    cwd=st.none() | _text,
    error=st.none() | _text,
    pid=st.none() | st.integers(min_value=0, max_value=2**31),
    pid_create_time=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    exit_code=st.none() | st.integers(-255, 255),
    command=st.lists(_text, max_size=4).map(tuple),
    environment=st.dictionaries(_text, _text | st.just(MASK), max_size=4),
    started_at=st.none() | _times,
    revision=st.integers(0, 2**40),
)


def session(**fields: object) -> Session:
    base: dict[str, object] = {"id": "abc", "status": Status.RUNNING, "created_at": NOW}
    base["updated_at"] = NOW
    base.update(fields)
    return Session(**base)  # type: ignore[arg-type]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(records)
def test_round_trip(record: Session) -> None:
    raw = codec.encode(record.to_dict())
    assert isinstance(raw, bytes)
    decoded = codec.decode(raw)
    assert Session.from_dict(decoded) == record
    # what any YAML reader sees is the same data
    assert yaml.safe_load(raw) == decoded


def test_encoding_is_block_style_in_field_order() -> None:
    record = session(command=("claude", "--print"), environment={"A": "1", "K": MASK})
    text = codec.encode(record.to_dict()).decode()
    keys = [line.split(":")[0] for line in text.splitlines() if not line.startswith((" ", "-"))]
    assert keys == list(record.to_dict())
    assert "- claude\n- --print\n" in text
    assert '  K: "***"\n' in text
    assert "  A: '1'\n" in text  # a digit string stays a string
    assert "&" not in text
    assert "*" not in text.replace('"***"', "")


def test_shared_objects_are_not_written_as_aliases() -> None:
    same = ["x"]
    text = codec.encode({"a": same, "b": same}).decode()
    assert "&" not in text
    assert "*" not in text
    assert codec.decode(text.encode()) == {"a": ["x"], "b": ["x"]}


class Bad(NamedTuple):
    test_id: str
    raw: bytes


DEEP = codec.MAX_DEPTH + 1
HOSTILE = [
    Bad("bad-utf8", b"id: \xff\n"),
    Bad("too-big", b"a: " + b"x" * codec.MAX_RECORD_BYTES + b"\n"),
    Bad("anchor", b"a: &x 1\nb: *x\n"),
    Bad("anchor-only", b"a: &x 1\n"),
    Bad("self-alias", b"&a [*a]\n"),
    Bad("alias-in-flow", b"a: &x [1]\nb: [*x, *x]\n"),
    Bad("deep-flow", b"a: " + b"[" * DEEP + b"]" * DEEP + b"\n"),
    Bad("deep-flow-map", b"a: " + b"{b: " * DEEP + b"1" + b"}" * DEEP + b"\n"),
    Bad("deep-block", "".join(f"{'  ' * i}k:\n" for i in range(DEEP + 1)).encode()),
    Bad("deep-compact", b"a:\n" + b"- " * (DEEP + 1) + b"x\n"),
    Bad("python-tag", b'a: !!python/object/apply:os.system ["true"]\n'),
    Bad("python-name", b"a: !!python/name:os.system\n"),
    Bad("unknown-tag", b"a: !custom 1\n"),
    Bad("unclosed", b"a: [1, 2\n"),
    Bad("tab-indent", b"a:\n\t- b\n"),
    Bad("two-docs", b"a: 1\n---\nb: 2\n"),
    Bad("nul", b"a: \x00\n"),
    Bad("merge-nonsense", b"<<: 1\n"),
]
NOT_A_RECORD = [
    Bad("empty", b""),
    Bad("blank", b" \n\t\n"),
    Bad("scalar", b"hello\n"),
    Bad("list", b"- a\n"),
    Bad("null-doc", b"~\n"),
    Bad("comments-only", b"# nothing here\n"),
    Bad("impossible-date", b"created_at: 2026-02-30\n"),
    Bad("huge-int", b"pid: " + b"9" * 5000 + b"\n"),
]


@pytest.mark.parametrize("case", HOSTILE, ids=lambda c: c.test_id)
def test_decode_refuses_hostile(case: Bad) -> None:
    with pytest.raises(codec.HostileRecord) as info:
        codec.decode(case.raw)
    assert 0 < len(str(info.value)) <= 300


@pytest.mark.parametrize("case", NOT_A_RECORD, ids=lambda c: c.test_id)
def test_decode_refuses_yaml_that_is_no_record_without_calling_it_hostile(case: Bad) -> None:
    with pytest.raises(codec.DecodeError) as info:
        codec.decode(case.raw)
    assert not isinstance(info.value, codec.HostileRecord)
    assert 0 < len(str(info.value)) <= 300


def test_brackets_inside_quoted_strings_are_text_not_nesting() -> None:
    payload = '{"a": ' + "[" * 300 + "]" * 300 + "}"
    record = session(command=("claude", "--mcp-config", payload, "{[", "]]]"))
    raw = codec.encode(record.to_dict())
    assert Session.from_dict(codec.decode(raw)) == record
    # The same payload in the hand-written flow style, and in a style only YAML reads.
    flow = f"id: abc\nstatus: running\ncreated_at: {NOW}\nupdated_at: {NOW}\n"
    flow += "command: [claude, '" + payload + "']\n"
    assert codec.decode(flow.encode())["command"][1] == payload
    folded = flow.replace("command: [claude, ", "command: !!seq [claude, ")
    assert codec.decode(folded.encode())["command"][1] == payload


def test_nesting_up_to_the_limit_is_read() -> None:
    depth = codec.MAX_DEPTH - 1
    raw = b"a: " + b"[" * depth + b"]" * depth + b"\n"
    assert codec.decode(raw)["a"] == functools.reduce(
        lambda inner, _: [inner], range(depth - 1), []
    )


def test_decode_error_is_a_value_error() -> None:
    assert issubclass(codec.DecodeError, ValueError)


def test_decode_accepts_hand_edited_yaml() -> None:
    text = (
        "# edited by hand\n"
        "id: abc\n"
        'status: "running"\n'
        "created_at: 2026-01-02T03:04:05.123456Z\n"
        "updated_at: '2026-01-02T03:04:05.123456Z'\n"
        "command: [claude, --print]\n"
        "environment: {A: '1'}\n"
    )
    record = Session.from_dict(codec.decode(text.encode()))
    assert record.status is Status.RUNNING
    assert record.created_at == NOW
    assert record.command == ("claude", "--print")
    assert record.environment == {"A": "1"}


def test_mask_text_is_not_taken_for_an_alias() -> None:
    raw = codec.encode(session(environment={"K": MASK, "L": "***x"}).to_dict())
    assert codec.decode(raw)["environment"] == {"K": MASK, "L": "***x"}


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300) | st.text(alphabet="[]{}&*!:- \n'\"ab#|>%@`,?~", max_size=200))
def test_decode_raises_only_decode_error(data: bytes | str) -> None:
    """Random bytes: a mapping or a DecodeError, never another exception."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        result = codec.decode(raw)
    except codec.DecodeError:
        return
    assert isinstance(result, dict)


# --- hand-written re-serialisations ------------------------------------------------------

_FIELDS = {f.name for f in dataclasses.fields(Session)}
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False)
    | _text
    | st.dates(min_value=dt.date(1, 1, 1))
    | st.datetimes(timezones=st.none() | st.just(dt.UTC))
)
_yaml_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=6,
)
_extra = st.dictionaries(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_ -]{0,12}", fullmatch=True).filter(
        lambda k: k not in _FIELDS
    ),
    _yaml_values,
    max_size=3,
)


@st.composite
def hand_written(draw: st.DrawFn, record: Session) -> str:
    """Serialise ``record`` one key at a time in random styles, with comments between."""
    chunks = []
    if draw(st.booleans()):
        chunks.append("# written by hand\n")
    for key, value in record.to_dict().items():
        collection = isinstance(value, list | dict) and bool(value)
        # The C dumper: the pure-Python one writes U+0085 raw with allow_unicode, and
        # reads it back as a line break (a PyYAML bug, not a hand edit).
        text = yaml.dump(
            {key: value},
            Dumper=yaml.CSafeDumper,
            default_flow_style=draw(st.sampled_from([False, None])) if collection else False,
            default_style=draw(st.sampled_from([None, None, "'", '"'])),
            indent=draw(st.sampled_from([2, 4])),
            allow_unicode=draw(st.booleans()),
            width=draw(st.sampled_from([80, 1 << 16])),
            sort_keys=False,
        )
        if text.count("\n") == 1 and draw(st.booleans()):
            text = text[:-1] + draw(st.sampled_from(["  # note", " # a: b", "   #"])) + "\n"
        chunks.append(text)
        if draw(st.integers(0, 4)) == 0:
            chunks.append(draw(st.sampled_from(["\n", "# between\n", "  # indented\n"])))
    return "".join(chunks)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), records, _extra)
def test_hand_written_records_decode_to_the_same_record(
    data: st.DataObject, record: Session, extra: dict[str, object]
) -> None:
    record = record.evolve(extra=extra)
    text = data.draw(hand_written(record))
    assert Session.from_dict(codec.decode(text.encode())) == record
    # and what we write back reads as the same record again
    assert Session.from_dict(codec.decode(codec.encode(record.to_dict()))) == record


def test_encode_keeps_any_yaml_value_a_person_added() -> None:
    extra = {
        "seen": dt.date(2026, 1, 2),
        "at": dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC),
        "tags": {"a": [1, 2.5, None, True]},
        "blob": b"\x00\x01",
        "when": dt.datetime(2026, 1, 2, 3, 4),
    }
    record = session(extra=extra)
    assert Session.from_dict(codec.decode(codec.encode(record.to_dict()))) == record


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(records)
def test_the_fast_writer_means_what_yaml_reads(record: Session) -> None:
    """Whatever the fast writer writes, PyYAML reads as the same record (and it writes
    every record that has no runs history or hand-added values)."""
    data = record.to_dict()
    fast = canonical.dump(data, MASK)
    if fast is None:
        return
    assert yaml.safe_load(fast) == data


def test_writing_a_typical_record_does_not_import_yaml(tmp_path: pathlib.Path) -> None:
    code = (
        "import sys\n"
        "from amux_tmux.model import Session, Status, utcnow\n"
        "from amux_tmux.store import FileStore\n"
        f"s = FileStore(__import__('pathlib').Path({str(tmp_path)!r}))\n"
        "n = utcnow()\n"
        "s.create(Session(id='abc123', status=Status.RUNNING, created_at=n, updated_at=n,\n"
        "    command=('claude', '--model', 'x y'), environment={'A': '***', 'B': 'c'}))\n"
        "s.update('abc123', lambda r: r.evolve(name='n'))\n"
        "assert 'yaml' not in sys.modules, 'yaml was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
