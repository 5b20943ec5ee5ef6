"""The list index: used only while it matches the files, harmless when it does not."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import random
import time
import zlib
from typing import NamedTuple

import pytest

from amux_tmux import exc
from amux_tmux.model import Session, Status
from amux_tmux.store import FileStore, Query, atomic, codec
from amux_tmux.store import file as file_mod
from amux_tmux.store import index as idx
from tests.store.conftest import make_session

RACY = file_mod.RACY_WINDOW_NS / 1e9


def settle() -> None:
    """Wait until records written so far are old enough for the index to take them."""
    time.sleep(RACY * 1.2)


def truth(store: FileStore) -> tuple[list[Session], set[str]]:
    """What the files say, read without the store's index or caches."""
    sessions, bad = [], set()
    if not store.sessions_dir.exists():
        return [], set()
    for name in os.listdir(store.sessions_dir):
        if not (name.startswith("session-") and name.endswith(".yaml")):
            continue
        sid = name[len("session-") : -len(".yaml")]
        try:
            record = Session.from_dict(codec.decode((store.sessions_dir / name).read_bytes()))
            if record.id != sid:
                raise ValueError("id")
        except ValueError:
            bad.add(sid)
            continue
        sessions.append(record)
    sessions.sort(key=lambda s: (s.created_at, s.id))
    return sessions, bad


def assert_truthful(store: FileStore) -> None:
    expected, bad = truth(store)
    listing = store.list()
    assert listing.sessions == expected
    assert listing.problem_ids == bad
    assert listing.total == len(expected)
    page = store.list(Query(limit=3, offset=1))
    assert page.sessions == expected[1:4]


@pytest.fixture
def many(fstore: FileStore) -> FileStore:
    for i in range(30):
        fstore.create(
            make_session(
                f"rec{i:03d}",
                created_at=f"2026-01-01T00:00:{i % 7:02d}.000000Z",
                status=[Status.RUNNING, Status.STOPPED, Status.CREATED][i % 3],
                agent_id=["claude", "codex"][i % 2],
                workspace_id=f"w{i % 4}",
                name=f"n{i}",
                command=("claude", "--x", str(i)),
                environment={"K": "v", "N": str(i)},
            )
        )
    settle()
    return fstore


def count_record_opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    opened: list[str] = []
    real = os.open

    def tracking(path: object, *args: object, **kwargs: object) -> int:
        if "session-" in str(path):
            opened.append(str(path))
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", tracking)
    return opened


# --- use ------------------------------------------------------------------------------


def test_warm_list_opens_no_record_file(many: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    cold = many.list()  # builds the index
    assert many.index_path.exists()
    opened = count_record_opens(monkeypatch)
    fresh = FileStore(many.root)  # another process: nothing in memory
    assert fresh.list() == cold
    page = fresh.list(Query(status={Status.RUNNING}, agent_id="claude", limit=2, offset=1))
    assert page.total == len(
        [s for s in cold.sessions if s.status is Status.RUNNING and s.agent_id == "claude"]
    )
    assert opened == []
    # A record changed by another process is the only one read again.
    other = FileStore(many.root)
    other.update("rec005", lambda s: s.evolve(name="changed"))
    opened.clear()
    assert {s.id: s.name for s in fresh.list().sessions}["rec005"] == "changed"
    assert opened == [str(many.path_for("rec005"))]


def test_read_only_list_creates_nothing(root: pathlib.Path) -> None:
    store = FileStore(root)
    assert store.list().sessions == []
    assert store.list(Query(limit=20)).problems == []
    assert list(root.iterdir()) == []
    # .amux without sessions/: still nothing written
    (root / ".amux").mkdir()
    assert store.list().sessions == []
    assert os.listdir(root / ".amux") == []


def test_index_is_not_written_when_nothing_is_trusted_yet(fstore: FileStore) -> None:
    fstore.create(make_session("abc"))
    fstore.list()  # the record is younger than a timestamp tick
    assert not fstore.index_path.exists()
    settle()
    fstore.list()
    assert fstore.index_path.exists()
    stamp = fstore.index_path.stat().st_mtime_ns
    fstore.list()
    assert fstore.index_path.stat().st_mtime_ns == stamp  # unchanged: not rewritten


def test_records_json_cannot_hold_are_read_from_their_file(
    fstore: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as dt

    fstore.create(make_session("abc", extra={"seen": dt.date(2026, 1, 2), 1: "x"}))
    fstore.create(make_session("abd", extra={"notes": ["plain", {"k": 1.5}]}))
    settle()
    first = fstore.list()
    opened = count_record_opens(monkeypatch)
    assert FileStore(fstore.root).list() == first
    assert opened == [str(fstore.path_for("abc"))]


# --- a bad index is ignored and rebuilt -----------------------------------------------


class Damage(NamedTuple):
    test_id: str
    damage: object  # Callable[[pathlib.Path, bytes], None]


def _rewrite(mutate: object) -> object:
    def apply(path: pathlib.Path, data: bytes) -> None:
        path.write_bytes(mutate(data))  # type: ignore[operator]

    return apply


def _replace_with_fifo(path: pathlib.Path, _data: bytes) -> None:
    path.unlink()
    os.mkfifo(path, 0o600)


def _replace_with_dir(path: pathlib.Path, _data: bytes) -> None:
    path.unlink()
    path.mkdir()


def _replace_with_symlink(path: pathlib.Path, _data: bytes) -> None:
    path.unlink()
    path.symlink_to("/dev/zero")


def _reheader(data: bytes, **fields: int) -> bytes:
    head, _, body = data.partition(b"\n")
    version, layout, keys, rows, crc = (int(x) for x in head[len(idx.MAGIC) :].split())
    values = {"version": version, "layout": layout, "keys": keys, "rows": rows, "crc": crc}
    values.update(fields)
    line = " ".join(str(values[k]) for k in ("version", "layout", "keys", "rows", "crc"))
    return idx.MAGIC + line.encode() + b"\n" + body


DAMAGE = [
    Damage("empty", _rewrite(lambda d: b"")),
    Damage("truncated-header", _rewrite(lambda d: d[:10])),
    Damage("truncated-keys", _rewrite(lambda d: d[: len(d) // 4])),
    Damage("truncated-rows", _rewrite(lambda d: d[:-7])),
    Damage("flipped-byte", _rewrite(lambda d: d[:-40] + bytes([d[-40] ^ 1]) + d[-39:])),
    Damage("appended", _rewrite(lambda d: d + b"x")),
    Damage("other-version", _rewrite(lambda d: _reheader(d, version=idx.VERSION + 1))),
    Damage("other-layout", _rewrite(lambda d: _reheader(d, layout=1))),
    Damage("garbage", _rewrite(lambda d: os.urandom(len(d)))),
    Damage("pickle", _rewrite(lambda d: b"\x80\x04\x95" + d)),
    Damage("fifo", _replace_with_fifo),
    Damage("directory", _replace_with_dir),
    Damage("symlink-to-zero", _replace_with_symlink),
]


@pytest.mark.parametrize("case", DAMAGE, ids=lambda c: c.test_id)
def test_damaged_index_is_ignored_and_rebuilt(many: FileStore, case: Damage) -> None:
    expected = many.list()
    data = many.index_path.read_bytes()
    case.damage(many.index_path, data)  # type: ignore[operator]
    fresh = FileStore(many.root)
    assert fresh.list() == expected
    assert fresh.list(Query(limit=5)).sessions == expected.sessions[:5]
    if case.test_id != "directory":
        assert idx.load(many.index_path).keys() == {s.id for s in expected.sessions}


def test_an_index_far_larger_than_the_records_is_not_read(
    many: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = many.list()
    with open(many.index_path, "r+b") as f:
        f.truncate(10 * 2**30)  # sparse: 10 GiB that would all be read into memory
    read: list[int] = []
    real = idx._read_exactly
    monkeypatch.setattr(idx, "_read_exactly", lambda fd, n: read.append(n) or real(fd, n))
    assert FileStore(many.root).list() == expected
    assert read == []
    assert many.index_path.stat().st_size < 2**20  # replaced by a real one


def _forge(path: pathlib.Path, change: object) -> None:
    """Edit the index as a person would, then make its checksum match again."""
    data = path.read_bytes()
    head, _, body = data.partition(b"\n")
    version, layout, keys_len, _rows_len, _crc = (int(x) for x in head[len(idx.MAGIC) :].split())
    keys = json.loads(body[:keys_len])
    rows = body[keys_len:].split(b"\n")[:-1]
    keys, rows = change(keys, [json.loads(r) for r in rows])  # type: ignore[operator]
    row_bytes = [r if isinstance(r, bytes) else json.dumps(r).encode() for r in rows]
    offset = 0
    for key, raw in zip(keys, row_bytes, strict=True):
        if len(key) == 12:
            key[10], key[11] = offset, len(raw)
        offset += len(raw) + 1
    new_body = json.dumps(keys).encode() + b"".join(r + b"\n" for r in row_bytes)
    keys_len = len(new_body) - offset
    header = f"{version} {layout} {keys_len} {offset} {zlib.crc32(new_body)}\n".encode()
    path.write_bytes(idx.MAGIC + header + new_body)


def _set_row(field: str, value: object) -> object:
    position = idx._FIELDS.index(field)

    def change(keys: list[list[object]], rows: list[list[object]]) -> tuple[object, object]:
        for row in rows:
            row[position] = value
        return keys, rows

    return change


def _set_key(position: int, value: object) -> object:
    def change(keys: list[list[object]], rows: list[list[object]]) -> tuple[object, object]:
        for key in keys:
            key[position] = value
        return keys, rows

    return change


FORGERIES = [
    Damage("status-unknown", _set_row("status", "bogus")),
    Damage("status-list", _set_row("status", ["running"])),
    Damage("pid-text", _set_row("pid", "123")),
    Damage("pid-bool", _set_row("pid", True)),
    Damage("no-such-day", _set_row("created_at", "2026-02-30T00:00:00.000000Z")),
    Damage("time-word", _set_row("updated_at", "yesterday")),
    Damage("command-ints", _set_row("command", [1, 2])),
    Damage("env-list", _set_row("environment", ["A=1"])),
    Damage("runs-garbage", _set_row("runs", [[None, None, "nope", None, None]])),
    Damage("extra-list", _set_row("extra", [1])),
    Damage(
        "deep",
        lambda keys, rows: (
            keys,
            [
                json.dumps(r[:-1]).encode()[:-1]
                + b',{"a":'
                + b"[" * 50_000
                + b"]" * 50_000
                + b"}]"
                for r in rows
            ],
        ),
    ),
    Damage("id-path", _set_row("id", "../../etc")),
    Damage("key-status", _set_key(6, "bogus")),
    Damage("key-id", _set_key(0, "../x")),
    Damage("key-stamp-text", _set_key(1, "1")),
    Damage("key-offset", _set_key(10, 10**9)),
    Damage("key-negative", _set_key(11, -5)),
    Damage("key-short", lambda keys, rows: ([k[:5] for k in keys], rows)),
    Damage("rows-short", lambda keys, rows: (keys, [r[:5] for r in rows])),
]


@pytest.mark.parametrize("case", FORGERIES, ids=lambda c: c.test_id)
def test_index_edited_by_hand_is_harmless(many: FileStore, case: Damage) -> None:
    expected = many.list()
    _forge(many.index_path, case.damage)
    for _ in range(2):
        fresh = FileStore(many.root)
        assert fresh.list() == expected
        assert fresh.list(Query(limit=4, offset=2)).sessions == expected.sessions[2:6]


# --- never a wrong row ----------------------------------------------------------------


def _inplace(path: pathlib.Path, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.write(data)
        f.truncate()


@pytest.mark.parametrize("seed", range(6))
def test_index_never_yields_a_wrong_row(root: pathlib.Path, seed: int) -> None:
    """Random edits, renames, deletions, same-size rewrites in place and index damage;
    after each, the listing equals what the files say."""
    rng = random.Random(seed)
    store = FileStore(root)
    ids = [f"r{n:03d}" for n in range(12)]
    for sid in ids[:6]:
        store.create(make_session(sid, name="aaaa", created_at=f"2026-01-0{rng.randint(1, 9)}"))
    other = FileStore(root)  # another process
    for _step in range(60):
        op = rng.choice(
            ["create", "update", "same-size", "same-size-keep-mtime", "replace", "rename",
             "delete", "garbage", "fix", "index-cut", "index-drop", "sleep", "age"]
        )  # fmt: skip
        present = [s for s in ids if store.path_for(s).exists()]
        sid = rng.choice(present or ids)
        path = store.path_for(sid)
        if op == "create" and not path.exists():
            other.create(make_session(sid, name=rng.choice(["aaaa", "bbbb"])))
        elif op == "update" and sid in present:
            with_name = rng.choice(["aaaa", "bbbb", "cccc"])
            with contextlib.suppress(exc.CorruptRecord):  # garbage cannot be updated
                other.update(sid, lambda s, n=with_name: s.evolve(name=n))
        elif op.startswith("same-size") and sid in present:
            data = path.read_bytes()
            for old, new in ((b"aaaa", b"bbbb"), (b"bbbb", b"cccc"), (b"cccc", b"aaaa")):
                if old in data:
                    st = path.stat()
                    _inplace(path, data.replace(old, new))
                    if op.endswith("keep-mtime"):
                        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
                    break
        elif op == "replace" and sid in present:
            data = path.read_bytes().replace(b"aaaa", b"dddd")
            atomic.write_durable(path, data)
        elif op == "rename" and sid in present:
            target = store.path_for(rng.choice(ids))
            if not target.exists():
                data = path.read_bytes().replace(
                    f"id: {sid}".encode(), f"id: {target.stem[8:]}".encode()
                )
                path.rename(target)
                _inplace(target, data)
        elif op == "delete" and sid in present:
            path.unlink()
        elif op == "garbage" and sid in present:
            _inplace(path, b"id: " + sid.encode() + b"\nstatus: nope\n")
        elif op == "fix" and sid in present:
            _inplace(path, codec.encode(make_session(sid, name="eeee").to_dict()))
        elif op == "index-cut" and store.index_path.exists():
            data = store.index_path.read_bytes()
            store.index_path.write_bytes(data[: rng.randrange(len(data) + 1)])
        elif op == "index-drop":
            store.index_path.unlink(missing_ok=True)
        elif op == "sleep":
            settle()
        elif op == "age" and sid in present:
            past = time.time_ns() - 10**10
            os.utime(path, ns=(past, past))
        assert_truthful(store)  # the same instance, with its in-memory copy
        assert_truthful(FileStore(root))  # a new process
