"""References (id, name, unique id prefix), names that could shadow ids, and ``rename``."""

from __future__ import annotations

import json
import os
from typing import NamedTuple

import pytest

from amux_tmux.model import Status
from tests.cli.conftest import Amux, Cli, assert_one_line_error
from tests.conftest import agent_command, make_record, owned_session


def _records(cli: Cli, *specs: tuple[str, str | None, Status]) -> None:
    for sid, name, status in specs:
        make_record(cli.store, sid, cli.socket_path, status, name=name)


class Ref(NamedTuple):
    test_id: str
    ref: str
    found: str


REFS = [
    Ref("full-id", "f12f58c156", "f12f58c156"),
    Ref("unique-prefix", "f12f5", "f12f58c156"),
    Ref("shortest-unique-prefix", "b", "b0b0b0"),
    Ref("exact-name", "review", "a1a1a1"),
    Ref("name-shared-with-ended-picks-the-live", "dup", "c3c3c3"),
    Ref("id-wins-over-name", "d4d4d4", "d4d4d4"),
]


@pytest.mark.parametrize("case", REFS, ids=lambda c: c.test_id)
def test_reference_resolves(cli: Cli, amux: Amux, case: Ref) -> None:
    """show REF finds the one session a full id, a unique id prefix or a name means."""
    _records(
        cli,
        ("f12f58c156", None, Status.RUNNING),
        ("a1a1a1", "review", Status.RUNNING),
        ("b0b0b0", None, Status.STOPPED),
        ("c2c2c2", "dup", Status.STOPPED),
        ("c3c3c3", "dup", Status.RUNNING),
        ("d4d4d4", None, Status.STOPPED),
        ("e5e5e5", "d4d4d4x", Status.STOPPED),
    )
    code, out, err = amux("show", "--json", case.ref)
    assert code == 0, err
    assert json.loads(out)["id"] == case.found


class Ambiguous(NamedTuple):
    test_id: str
    ref: str
    candidates: str


AMBIGUOUS = [
    Ambiguous("name-and-another-s-id-prefix", "f12f", "abc123, f12f58c156"),
    Ambiguous("prefix-of-two-ids", "f1", "f12f58c156, f1aaaa"),
    Ambiguous("two-live-records-share-a-name", "twin", "bbb111, bbb222"),
]


@pytest.mark.parametrize("case", AMBIGUOUS, ids=lambda c: c.test_id)
def test_ambiguous_reference_touches_nothing(cli: Cli, case: Ambiguous) -> None:
    """A ref that means two sessions (one's name and the other's id prefix, say) is exit 2
    listing both, for every command; no session is stopped or removed."""
    store_id = cli.store.ensure_store_id()
    # tmux -S does not make the socket's directory (and says nothing): the first server.
    os.makedirs(os.path.dirname(cli.socket_path), mode=0o700, exist_ok=True)
    specs = [
        ("f12f58c156", None),
        ("abc123", "f12f"),  # hand-edited, or named before the other id existed
        ("f1aaaa", None),
        ("bbb111", "twin"),  # hand-edited: names are unique among live sessions
        ("bbb222", "twin"),
    ]
    for sid, name in specs:
        owned_session(cli.tmux, sid, store_id)
        make_record(cli.store, sid, cli.socket_path, Status.RUNNING, name=name)
    for command in (["show"], ["stop"], ["rm", "--force"], ["logs"], ["send", "hi"]):
        argv = [command[0], case.ref, *command[1:]]
        line = assert_one_line_error(cli.run(*argv, code=None), 2)
        assert line.endswith(f"{case.ref!r} is ambiguous; it matches: {case.candidates}"), line
    assert sorted(cli.tmux_sessions()) == sorted(f"amux-{sid}" for sid, _ in specs)
    assert {r["status"] for r in cli.json("ls", "--all")} == {"running"}


class TakenName(NamedTuple):
    test_id: str
    name: str
    message: str


TAKEN_NAMES = [
    TakenName("another-s-full-id", "f12f58c156", "the id of session f12f58c156"),
    TakenName("another-s-id-prefix", "f12f", "the id of session f12f58c156"),
    TakenName("a-live-session-s-name", "review", "already used by live session a1a1a1"),
    TakenName("not-a-name", "bad name!", "invalid session name"),
]


@pytest.mark.parametrize("case", TAKEN_NAMES, ids=lambda c: c.test_id)
def test_a_name_that_would_be_ambiguous_is_refused(cli: Cli, amux: Amux, case: TakenName) -> None:
    """start --name and rename refuse a name that is (the start of) another session's id
    or a live session's name: exit 2, nothing written, no tmux session made."""
    _records(cli, ("f12f58c156", None, Status.RUNNING), ("a1a1a1", "review", Status.RUNNING))
    _records(cli, ("c1c1c1", "mine", Status.RUNNING))
    code, out, err = amux("start", "--name", case.name, "--cwd", str(cli.root), "--", "true")
    assert (code, out) == (2, "")
    assert case.message in err
    code, out, err = amux("rename", "c1c1c1", case.name)
    assert (code, out) == (2, "")
    assert case.message in err
    assert len(err.splitlines()) == 1
    names = {r["id"]: r["name"] for r in json.loads(amux("ls", "--json")[1])}
    assert names == {"f12f58c156": None, "a1a1a1": "review", "c1c1c1": "mine"}
    assert cli.tmux_sessions() == []


def test_rename(cli: Cli, amux: Amux) -> None:
    """rename gives a live session a new name (its id and tmux session stay); the old name
    no longer resolves; a name only an ended session holds can be taken; --json prints
    the record."""
    sid = cli.start(*agent_command(), opts=("--name", "first"))
    _records(cli, ("e0e0e0", "later", Status.STOPPED))
    code, out, err = amux("rename", "first", "second")
    assert (code, out, err) == (0, f"{sid}\n", "")
    assert cli.show("second")["id"] == sid
    assert amux("show", "first")[0] == 3
    code, out, _ = amux("rename", "--json", sid, "later")
    assert code == 0
    assert (json.loads(out)["id"], json.loads(out)["name"]) == (sid, "later")
    assert cli.show("later")["id"] == sid  # the live one, not the ended e0e0e0
    assert cli.tmux_sessions() == [f"amux-{sid}"]
    assert cli.run("rename", sid, "later").stdout == f"{sid}\n"  # its own name: fine


def test_rename_refuses_a_live_duplicate(cli: Cli) -> None:
    """Two live sessions cannot share a name: rename of the second to the first's name is
    exit 2 and changes nothing."""
    first = cli.start(*agent_command(), opts=("--name", "alpha"))
    second = cli.start(*agent_command(), opts=("--name", "beta"))
    line = assert_one_line_error(cli.run("rename", second, "alpha", code=None), 2)
    assert f"'alpha' is already used by live session {first}" in line
    assert cli.show("beta")["id"] == second
    line = assert_one_line_error(cli.run("start", "--name", "alpha", "--", "true", code=None), 2)
    assert "already used" in line
    assert len(cli.json("ls")) == 2
