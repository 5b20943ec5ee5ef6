"""YAML codec: faithful round trips for records, only DecodeError for anything hostile."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amux_tmux.model import Session, Status, format_time
from amux_tmux.secrets import MASK
from amux_tmux.store import codec

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


REJECTED = {
    "empty": b"",
    "blank": b" \n\t\n",
    "bad-utf8": b"id: \xff\n",
    "too-big": b"a: " + b"x" * codec.MAX_RECORD_BYTES + b"\n",
    "scalar": b"hello\n",
    "list": b"- a\n",
    "null-doc": b"~\n",
    "anchor": b"a: &x 1\nb: *x\n",
    "anchor-only": b"a: &x 1\n",
    "self-alias": b"&a [*a]\n",
    "alias-in-flow": b"a: &x [1]\nb: [*x, *x]\n",
    "flow-openers": b"a: "
    + b"[" * (codec.MAX_FLOW_OPENERS + 1)
    + b"]" * (codec.MAX_FLOW_OPENERS + 1),
    "python-tag": b'a: !!python/object/apply:os.system ["true"]\n',
    "python-name": b"a: !!python/name:os.system\n",
    "unknown-tag": b"a: !custom 1\n",
    "unclosed": b"a: [1, 2\n",
    "tab-indent": b"a:\n\t- b\n",
    "two-docs": b"a: 1\n---\nb: 2\n",
    "dup-merge": b"<<: 1\n",
}


@pytest.mark.parametrize("name", list(REJECTED))
def test_decode_rejects(name: str) -> None:
    with pytest.raises(codec.DecodeError) as info:
        codec.decode(REJECTED[name])
    assert 0 < len(str(info.value)) <= 300


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
    raw = data.encode() if isinstance(data, str) else data
    try:
        result = codec.decode(raw)
    except codec.DecodeError:
        return
    assert isinstance(result, dict)


def test_decode_huge_integer_is_a_decode_error() -> None:
    with pytest.raises(codec.DecodeError):
        codec.decode(b"pid: " + b"9" * 5000 + b"\n")
