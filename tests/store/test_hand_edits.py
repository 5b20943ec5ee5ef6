"""Records people edit by hand are read, listed and kept; limits refuse at the door."""

from __future__ import annotations

import datetime as dt
import pathlib
from typing import NamedTuple

import pytest
import yaml

from amux_tmux import exc
from amux_tmux.model import MAX_LABEL, Session, Status
from amux_tmux.store import FileStore, codec
from tests.store.conftest import make_session


class Edit(NamedTuple):
    test_id: str
    lines: dict[str, str]  # key -> the whole replacement line(s); new keys are appended
    field: str
    expect: object


EDITS = [
    Edit("notes", {"notes": "notes: ask Kim before stopping"}, "extra", None),
    Edit("env-number-bool", {"environment": "environment: {DEBUG: 1, VERBOSE: true}"},
         "environment", {"DEBUG": "1", "VERBOSE": "true"}),
    Edit("env-yes-block", {"environment": "environment:\n  VERBOSE: yes\n  QUIET: off"},
         "environment", {"VERBOSE": "true", "QUIET": "false"}),
    Edit("env-null", {"environment": "environment: null"}, "environment", {}),
    Edit("env-empty", {"environment": "environment:"}, "environment", {}),
    Edit("command-line", {"command": "command: sleep 1000"}, "command", ("sleep", "1000")),
    Edit("command-number", {"command": "command:\n- sleep\n- 1000"}, "command", ("sleep", "1000")),
    Edit("command-flow", {"command": 'command: [sleep, "1000"]  # why not'}, "command",
         ("sleep", "1000")),
    Edit("pid-quoted", {"pid": "pid: '123'"}, "pid", 123),
    Edit("date-only", {"created_at": "created_at: 2026-01-02"}, "created_at",
         "2026-01-02T00:00:00.000000Z"),
    Edit("naive-time", {"created_at": "created_at: 2026-01-02 03:04:05"}, "created_at",
         "2026-01-02T03:04:05.000000Z"),
    Edit("offset-time", {"created_at": "created_at: '2026-01-02T05:04:05+02:00'"}, "created_at",
         "2026-01-02T03:04:05.000000Z"),
    Edit("status-capital", {"status": "status: Running"}, "status", Status.RUNNING),
    Edit("name-number", {"name": "name: 123"}, "name", "123"),
    Edit("comments", {"name": "# who asked for it\nname:   review   # the reviewer"}, "name",
         "review"),
    Edit("double-quoted", {"name": 'name: "re\\tview"'}, "name", "re\tview"),
]  # fmt: skip


def edit(text: str, lines: dict[str, str]) -> str:
    out = text.splitlines()
    for key, replacement in lines.items():
        start = next((i for i, ln in enumerate(out) if ln.startswith(f"{key}:")), None)
        if start is None:
            out.append(replacement)
            continue
        end = start + 1
        while end < len(out) and out[end].startswith((" ", "-")):
            end += 1  # the old value's block lines
        out[start:end] = [replacement]
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("case", EDITS, ids=lambda c: c.test_id)
def test_hand_edit_is_listed_and_survives_an_update(fstore: FileStore, case: Edit) -> None:
    fstore.create(make_session("abc123", command=("claude",), environment={"A": "b"}))
    fstore.create(make_session("other1"))
    path = fstore.path_for("abc123")
    text = edit(path.read_text(), {**case.lines, "notes": "notes: ask Kim before stopping"})
    path.write_text(text)

    listing = fstore.list()
    assert listing.problems == []
    assert sorted(s.id for s in listing.sessions) == ["abc123", "other1"]
    record = fstore.get("abc123")
    if case.expect is not None:
        assert getattr(record, case.field) == case.expect
    assert record.extra == {"notes": "ask Kim before stopping"}
    assert path.read_text() == text  # reading never rewrites the file

    # `stop` is an update: the hand-added key is written back, the rest normalised.
    stopped = fstore.update("abc123", lambda s: s.transition(Status.STOPPED))
    assert stopped.extra == {"notes": "ask Kim before stopping"}
    on_disk = yaml.safe_load(path.read_text())
    assert on_disk["notes"] == "ask Kim before stopping"
    assert on_disk["status"] == "stopped"
    if case.expect is not None and case.field not in ("extra", "status"):
        again = getattr(fstore.get("abc123"), case.field)
        assert again == case.expect
    assert fstore.list().problems == []


def test_a_record_written_entirely_by_hand(fstore: FileStore) -> None:
    fstore.ensure_dirs()
    fstore.path_for("7f3a9c2e1b").write_text(
        "# started by hand, for the demo\n"
        "id: 7f3a9c2e1b\n"
        "status: Running\n"
        "name: review            # optional\n"
        "agent_id: claude\n"
        'tmux_session_id: "$3"\n'
        "pid: 12345\n"
        "command: [claude, --api-key, \"***\"]\n"
        "environment: {ANTHROPIC_API_KEY: \"***\", NODE_ENV: production}\n"
        "created_at: 2026-11-24T10:30:00Z\n"
        "updated_at: 2026-11-24T10:35:00Z\n"
        "notes: anything a person added\n"
        "seen: 2026-11-24\n"
    )  # fmt: skip
    (record,) = fstore.list().sessions
    assert record.name == "review"
    assert record.status is Status.RUNNING
    assert record.created_at == "2026-11-24T10:30:00.000000Z"
    assert record.extra == {"notes": "anything a person added", "seen": dt.date(2026, 11, 24)}
    updated = fstore.update("7f3a9c2e1b", lambda s: s.evolve(pid=1))
    assert updated.extra == record.extra
    assert fstore.get("7f3a9c2e1b").extra["seen"] == dt.date(2026, 11, 24)


# --- limits at the door -----------------------------------------------------------------


class TooBig(NamedTuple):
    test_id: str
    fields: dict[str, object]
    says: str


TOO_BIG = [
    TooBig("agent", {"agent_id": "a" * 140_000}, "--agent"),
    TooBig("workspace", {"workspace_id": "w" * 140_000}, "--workspace"),
    TooBig("both", {"agent_id": "a" * 70_000, "workspace_id": "w" * 80_000}, "--workspace"),
    TooBig("command", {"command": ("x",) * 40_000}, "command"),
    TooBig("environment", {"environment": {"BLOB": "p" * 140_000}}, "-e"),
]


@pytest.mark.parametrize("case", TOO_BIG, ids=lambda c: c.test_id)
def test_create_refuses_a_record_with_no_room_to_grow(fstore: FileStore, case: TooBig) -> None:
    with pytest.raises(exc.RecordTooLarge) as info:
        fstore.create(make_session("abc123", **case.fields))
    assert info.value.exit_code == exc.EXIT_USAGE
    assert str(codec.MAX_NEW_RECORD_BYTES) in str(info.value)
    assert case.says in str(info.value)
    assert not fstore.exists("abc123")


def test_update_never_writes_past_the_cap(fstore: FileStore) -> None:
    fstore.create(make_session("abc123", error="e" * 100_000))
    before = fstore.path_for("abc123").read_bytes()
    with pytest.raises(exc.StoreError, match="limit"):
        fstore.update("abc123", lambda s: s.evolve(error="e" * (codec.MAX_RECORD_BYTES + 1)))
    assert fstore.path_for("abc123").read_bytes() == before
    assert fstore.list().problems == []


def test_labels_at_the_limit_fit_many_times_over() -> None:
    record = make_session("abc123", agent_id="a" * MAX_LABEL, workspace_id="w" * MAX_LABEL)
    assert len(codec.encode(record.to_dict())) * 100 < codec.MAX_NEW_RECORD_BYTES


# --- references -------------------------------------------------------------------------


def test_resolve_name_and_prefix_of_another_is_ambiguous(fstore: FileStore) -> None:
    fstore.create(make_session("rev001", name="alpha"))
    fstore.create(make_session("abc123", name="rev"))
    with pytest.raises(exc.AmbiguousReference) as info:
        fstore.resolve("rev")
    assert info.value.candidates == ("abc123", "rev001")
    assert info.value.exit_code == exc.EXIT_USAGE
    assert fstore.resolve("rev0").id == "rev001"
    assert fstore.resolve("alpha").id == "rev001"


def test_resolve_counts_bad_records_as_prefix_candidates(fstore: FileStore) -> None:
    fstore.create(make_session("abc123"))
    fstore.path_for("abc999").write_text("id: abc999\nstatus: paused\n")
    with pytest.raises(exc.AmbiguousReference):
        fstore.resolve("abc")
    with pytest.raises(exc.CorruptRecord):
        fstore.resolve("abc9")
    with pytest.raises(exc.CorruptRecord):
        fstore.resolve("abc999")  # an exact id first
    assert fstore.resolve("abc1").id == "abc123"


def test_resolve_a_repeated_name_means_the_live_one(fstore: FileStore) -> None:
    fstore.create(make_session("aaa111", name="job", status=Status.STOPPED))
    fstore.create(make_session("bbb222", name="job", status=Status.RUNNING))
    fstore.create(make_session("ccc333", name="job", status=Status.FAILED))
    assert fstore.resolve("job").id == "bbb222"


def test_new_id_never_starts_with_a_name(
    fstore: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    fstore.create(make_session("abc123", name="ab"))
    fstore.create(make_session("bad9990000", name="de"))
    fstore.path_for("bad9990000").write_text("status: nope\n")  # its name is unknown now
    candidates = iter(
        [bytes.fromhex(h) for h in ("ab01020304", "bad9990000", "de01020304", "0102030405")]
    )
    monkeypatch.setattr("amux_tmux.model.os.urandom", lambda _n: next(candidates))
    # ab... starts with a name; bad9990000 is a bad record's id; de's record is unreadable.
    assert fstore.new_id() == "de01020304"


def test_new_id_is_never_all_digits(fstore: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    candidates = iter([bytes.fromhex("0725325471"), bytes.fromhex("1234567890"), b"\xab" * 5])
    monkeypatch.setattr("amux_tmux.model.os.urandom", lambda _n: next(candidates))
    assert fstore.new_id() == "ababababab"


def test_new_id_avoids_quarantined_ids(fstore: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    fstore.ensure_dirs()
    fstore.path_for("aaaaaaaaaa").write_bytes(b"status: [\n")
    fstore.list()  # moves it to quarantine
    assert not fstore.exists("aaaaaaaaaa")
    candidates = iter([bytes.fromhex("aaaaaaaaaa"), b"\xab" * 5])
    monkeypatch.setattr("amux_tmux.model.os.urandom", lambda _n: next(candidates))
    assert fstore.new_id() == "ababababab"


def test_session_with_every_field_round_trips_through_the_store(root: pathlib.Path) -> None:
    store = FileStore(root)
    record = make_session(
        "abc123",
        name="n",
        agent_id="claude",
        command=("a", "b c"),
        environment={"K": "v"},
        pid=5,
        pid_create_time=1.5,
        extra={"notes": "x"},
    )
    written = store.create(record)
    assert Session.from_dict(codec.decode(store.path_for("abc123").read_bytes())) == written
