"""Bad record files never break a listing: hostile ones are quarantined, the others stay.

Either way the id they name is reported on every listing, so its session is protected.

Also: ids that try to leave the store are refused before anything touches the disk.
"""

from __future__ import annotations

import fcntl
import os
import pathlib
import socket
import stat
import subprocess
from typing import NamedTuple

import pytest

from amux_tmux import exc
from amux_tmux.store import FileStore, Listing, Problem, canonical, codec
from tests.store.conftest import make_session, python, snapshot, stop

GOOD_IDS = ["good-one", "good-two"]


def record_bytes(session_id: str, **replace: str) -> bytes:
    """A valid record's YAML with some ``key: value`` lines replaced verbatim."""
    text = codec.encode(make_session(session_id).evolve(revision=1).to_dict()).decode()
    lines = text.splitlines()
    for key, value in replace.items():
        for i, line in enumerate(lines):
            if line.startswith(f"{key}:"):
                lines[i] = f"{key}: {value}"
                break
        else:
            lines.append(f"{key}: {value}")
    return ("\n".join(lines) + "\n").encode()


def billion_laughs() -> bytes:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [{','.join([f'*{prev}'] * 9)}]")
        prev = name
    lines.append("id: bomb01")
    return ("\n".join(lines) + "\n").encode()


def hostile_files(marker: pathlib.Path) -> dict[str, bytes]:
    """Name -> bytes of a ``session-<name>.yaml`` file that must end up in quarantine."""
    return {
        "alias-bomb": billion_laughs(),
        "self-alias": b"&a [*a]\n",
        "self-alias-map": b"id: &x self-alias-map\nname: *x\nloop: &l {k: *l}\n",
        "anchor-only": record_bytes("anchor-only", name="&n hello"),
        "py-apply": record_bytes(
            "py-apply", name=f'!!python/object/apply:os.system ["touch {marker}"]'
        ),
        "py-apply-doc": f'!!python/object/apply:os.system ["touch {marker}"]\n'.encode(),
        "py-name": record_bytes("py-name", name="!!python/name:os.system"),
        "py-new": f'!!python/object/new:subprocess.call [["touch", "{marker}"]]\n'.encode(),
        "bad-utf8": record_bytes("bad-utf8").replace(b"name: null", b"name: \xff\xfe\xc3("),
        "nul-bytes": b"\x00" * 64,
        "two-docs": record_bytes("two-docs") + b"---\n" + record_bytes("two-docs"),
        "broken-yaml": b"id: broken-yaml\nstatus: [unclosed\n",
        "flow-bomb": b"id: [" + b"[" * 300 + b"]" * 301 + b"\n",
        "too-big": b"# " + b"x" * (10 * 1024 * 1024) + b"\n",
    }


def schema_breaking_files() -> dict[str, bytes]:
    """Name -> bytes of a file that is YAML but no usable record: it stays in place."""
    return {
        "binary-tag": record_bytes("binary-tag", name="!!binary aGVsbG8="),
        "bare-scalar": b"just some words\n",
        "bare-number": b"42\n",
        "a-list": b"- id\n- status\n",
        "empty": b"",
        "blank": b"  \n\n\t\n",
        "status-no": record_bytes("status-no", status="no"),
        "status-unknown": record_bytes("status-unknown", status="paused"),
        "huge-int": record_bytes("huge-int", pid="9" * 5000),
        "id-mismatch": record_bytes("someone-else"),
        "overflow-time": record_bytes("overflow-time", created_at="0001-01-01T00:00:00+14:00"),
        "no-such-day": record_bytes("no-such-day", created_at="2026-02-30"),
        "float-env": record_bytes("float-env", environment="{PY: 3.10}"),
    }


@pytest.fixture
def marker(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "pwned"


def plant(store: FileStore, name: str, data: bytes) -> pathlib.Path:
    path = store.sessions_dir / f"session-{name}.yaml"
    path.write_bytes(data)
    return path


@pytest.fixture
def with_good(fstore: FileStore) -> FileStore:
    for sid in GOOD_IDS:
        fstore.create(make_session(sid))
    return fstore


def problem_for(listing: Listing, path: pathlib.Path) -> Problem:
    found = [p for p in listing.problems if p.path == str(path)]
    assert len(found) == 1, listing.problems
    return found[0]


def assert_quarantined(
    listing: Listing, store: FileStore, path: pathlib.Path, data: bytes | None
) -> None:
    assert not os.path.lexists(path), f"{path.name} is still in sessions/"
    problem = problem_for(listing, path)
    assert problem.why
    assert problem.quarantined_to is not None
    moved = pathlib.Path(problem.quarantined_to)
    assert moved.parent == store.quarantine_dir
    assert moved.name.startswith(path.name)  # the id stays in the name
    if data is not None and len(data) < 1_000_000:
        assert moved.read_bytes() == data
    elif data is not None:
        assert moved.stat().st_size == len(data)


def session_id_of(path: pathlib.Path) -> str:
    return path.name.removeprefix("session-").removesuffix(".yaml")


@pytest.mark.parametrize("name", list(hostile_files(pathlib.Path("/x"))))
def test_hostile_file_is_quarantined_and_stays_reported(
    with_good: FileStore, marker: pathlib.Path, name: str
) -> None:
    data = hostile_files(marker)[name]
    path = plant(with_good, name, data)
    listing = with_good.list()
    assert [s.id for s in listing.sessions] == sorted(GOOD_IDS)
    assert_quarantined(listing, with_good, path, data)
    assert not marker.exists(), "a YAML tag executed code"
    # Every later listing still names the id, so its session stays protected...
    for _ in range(2):
        again = with_good.list()
        assert [s.id for s in again.sessions] == sorted(GOOD_IDS)
        assert problem_for(again, path).quarantined_to is not None
        assert again.problem_ids == {session_id_of(path)}
    with pytest.raises(exc.CorruptRecord):
        with_good.get(session_id_of(path))
    # ... until a person removes the copy.
    with_good.discard(session_id_of(path))
    assert with_good.list().problems == []
    with pytest.raises(exc.SessionNotFound):
        with_good.get(session_id_of(path))


@pytest.mark.parametrize("name", list(schema_breaking_files()))
def test_schema_breaking_file_stays_in_place_and_is_reported(
    with_good: FileStore, name: str
) -> None:
    data = schema_breaking_files()[name]
    path = plant(with_good, name, data)
    for _ in range(3):  # every list, warm or cold
        listing = with_good.list()
        assert [s.id for s in listing.sessions] == sorted(GOOD_IDS)
        problem = problem_for(listing, path)
        assert problem.quarantined_to is None
        assert problem.session_id == name
        assert listing.problem_ids == {name}
        assert path.read_bytes() == data  # never moved, never rewritten
    with pytest.raises(exc.CorruptRecord) as info:
        with_good.get(name)
    assert problem.why in str(info.value)
    assert "fix the file" in str(info.value)
    with pytest.raises(exc.CorruptRecord):
        with_good.resolve(name)
    with pytest.raises(exc.CorruptRecord):
        with_good.update(name, lambda s: s.evolve(name="x"))
    assert os.listdir(with_good.quarantine_dir) == []
    with_good.discard(name)
    assert not path.exists()


def test_all_bad_files_at_once(with_good: FileStore, marker: pathlib.Path) -> None:
    hostile = hostile_files(marker)
    breaking = schema_breaking_files()
    paths = {name: plant(with_good, name, data) for name, data in {**hostile, **breaking}.items()}
    listing = with_good.list()
    assert [s.id for s in listing.sessions] == sorted(GOOD_IDS)
    assert len(listing.problems) == len(paths)
    for name in hostile:
        assert_quarantined(listing, with_good, paths[name], hostile[name])
    assert len(os.listdir(with_good.quarantine_dir)) == len(hostile)
    assert listing.problem_ids == set(paths)
    assert with_good.list().problem_ids == set(paths)
    assert not marker.exists()


def test_bad_file_names_are_quarantined(with_good: FileStore) -> None:
    bad = ["session-ABC.yaml", "session-.yaml", "session-a b.yaml", "session-x.yaml"]
    for name in bad:
        (with_good.sessions_dir / name).write_bytes(record_bytes("abc"))
    listing = with_good.list()
    assert [s.id for s in listing.sessions] == sorted(GOOD_IDS)
    assert len(listing.problems) == len(bad)
    assert {p.quarantined_to is not None for p in listing.problems} == {True}
    assert listing.problem_ids == set()  # no id to protect
    assert sorted(os.listdir(with_good.sessions_dir)) == [f"session-{s}.yaml" for s in GOOD_IDS]


CHILD_LIST_SPECIAL = r"""
import pathlib, sys
from amux_tmux import exc
from amux_tmux.store import FileStore
store = FileStore(pathlib.Path(sys.argv[1]))
listing = store.list()
print(",".join(s.id for s in listing.sessions))
for p in sorted(listing.problems, key=lambda p: p.path):
    print("problem", p.session_id, p.quarantined_to is not None, p.why)
for sid in sys.argv[2:]:
    try:
        store.get(sid)
    except exc.CorruptRecord as err:
        print("get", sid, "corrupt")
"""


def test_special_files_do_not_block_or_break(with_good: FileStore, tmp_path: pathlib.Path) -> None:
    """A FIFO (a blocking read would hang), a unix socket (open fails), a directory."""
    fifo = with_good.sessions_dir / "session-fifo01.yaml"
    os.mkfifo(fifo, 0o600)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(with_good.sessions_dir / "session-sock01.yaml"))
    directory = with_good.sessions_dir / "session-dir001.yaml"
    directory.mkdir()
    proc = python(CHILD_LIST_SPECIAL, str(with_good.root), "fifo01", "sock01",
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=20)  # a hang fails here, not forever
    finally:
        stop(proc)
        sock.close()
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[0] == ",".join(sorted(GOOD_IDS))
    assert sorted(line.split()[1] for line in lines[1:4]) == ["dir001", "fifo01", "sock01"]
    assert all(line.split()[2] == "True" for line in lines[1:4])
    for kind in ("a FIFO", "a socket", "a directory"):
        assert f"record is {kind}, not a regular file" in out
    assert lines[4:] == ["get fifo01 corrupt", "get sock01 corrupt"]
    listing = with_good.list()
    assert [s.id for s in listing.sessions] == sorted(GOOD_IDS)
    assert listing.problem_ids == {"fifo01", "sock01", "dir001"}


def test_get_of_a_fifo_does_not_block(with_good: FileStore) -> None:
    os.mkfifo(with_good.path_for("fifo02"), 0o600)
    with pytest.raises(exc.CorruptRecord) as info:
        with_good.get("fifo02")
    assert "FIFO" in str(info.value)


def test_symlink_to_a_hostile_target_is_not_read(
    with_good: FileStore, tmp_path: pathlib.Path
) -> None:
    link = with_good.sessions_dir / "session-link01.yaml"
    link.symlink_to("/dev/zero")  # would never end if followed
    listing = with_good.list()
    assert [s.id for s in listing.sessions] == sorted(GOOD_IDS)
    assert_quarantined(listing, with_good, link, None)


def test_bad_record_is_left_alone_when_its_lock_is_busy(with_good: FileStore) -> None:
    path = plant(with_good, "busy01", b"status: [\n")
    fd = os.open(with_good.lock_path("busy01"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        listing = with_good.list()
        assert [s.id for s in listing.sessions] == sorted(GOOD_IDS)
    finally:
        os.close(fd)
    assert path.exists()  # a writer holds the lock: not ours to move
    assert [p.path for p in listing.problems] == [str(path)]
    assert listing.problems[0].quarantined_to is None
    assert listing.problem_ids == {"busy01"}
    listing = with_good.list()
    assert [s.id for s in listing.sessions] == sorted(GOOD_IDS)
    assert not path.exists()
    assert listing.problem_ids == {"busy01"}


def test_get_of_a_hostile_record_quarantines_it(with_good: FileStore) -> None:
    path = plant(with_good, "bad001", b"status: [\n")
    with pytest.raises(exc.CorruptRecord) as info:
        with_good.get("bad001")
    assert info.value.quarantined_to is not None
    assert not path.exists()
    assert len(os.listdir(with_good.quarantine_dir)) == 1
    with pytest.raises(exc.CorruptRecord):
        with_good.update("bad001", lambda s: s.evolve(name="x"))
    with pytest.raises(exc.CorruptRecord):
        with_good.resolve("bad0")  # a problem's id is a prefix candidate too


# --- one bad file is one bad file -------------------------------------------------------


class Failure(NamedTuple):
    test_id: str
    where: str  # "open", "read" or "parse": the call that fails for the victim only
    error: BaseException


FAILURES = [
    Failure("eacces-open", "open", PermissionError(13, "Permission denied")),
    Failure("eio-read", "read", OSError(5, "Input/output error")),
    Failure("decode-bug", "parse", RuntimeError("a bug")),
    Failure("memory", "parse", MemoryError()),
    Failure("overflow", "parse", OverflowError("big")),
    Failure("recursion", "parse", RecursionError()),
]


@pytest.mark.parametrize("case", FAILURES, ids=lambda c: c.test_id)
def test_any_failure_of_one_file_is_a_problem_of_that_file(
    with_good: FileStore, monkeypatch: pytest.MonkeyPatch, case: Failure
) -> None:
    """Tests run as root, so mode 000 cannot be tried: the error is injected instead."""
    victim = with_good.path_for("victim")
    victim.write_bytes(record_bytes("victim"))
    inode = victim.stat().st_ino
    real_open, real_read, real_parse = os.open, os.read, canonical.parse

    def fake_open(path: object, *args: object, **kwargs: object) -> int:
        if path == victim:
            raise case.error
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    def fake_read(fd: int, size: int) -> bytes:
        if os.fstat(fd).st_ino == inode:
            raise case.error
        return real_read(fd, size)

    def fake_parse(text: str) -> object:
        if "id: victim" in text:
            raise case.error
        return real_parse(text)

    fake = {"open": fake_open, "read": fake_read, "parse": fake_parse}[case.where]
    target = {"open": (os, "open"), "read": (os, "read"), "parse": (canonical, "parse")}
    monkeypatch.setattr(*target[case.where], fake)
    listing = with_good.list()
    monkeypatch.undo()
    assert [s.id for s in listing.sessions] == sorted(GOOD_IDS)
    assert listing.problem_ids == {"victim"}
    assert type(case.error).__name__ in str(listing.problems) or case.where != "parse"
    assert victim.exists()  # the disk's fault or ours, not the record's
    assert [s.id for s in with_good.list().sessions] == sorted([*GOOD_IDS, "victim"])


# --- inputs that could crash the C parser: parse them in a child ------------------------

CHILD_LIST = r"""
import pathlib, sys
from amux_tmux.store import FileStore
store = FileStore(pathlib.Path(sys.argv[1]))
ids = [s.id for s in store.list().sessions]
print(",".join(ids))
for p in store.list().problems:
    print("problem", pathlib.Path(p.path).name, p.quarantined_to is not None)
"""

DEEP = {
    "deep-seq": b"[" * 30_000,
    "deep-seq-record": b"id: deep-seq-record\nname: " + b"[" * 30_000 + b"\n",
    "deep-map": b"{" * 30_000,
    "deep-mixed": b"[{" * 15_000 + b"\n",
    "deep-block": "".join(f"{'  ' * i}k:\n" for i in range(3_000)).encode(),
    "deep-block-seq": "".join(f"{'  ' * i}- \n" for i in range(3_000)).encode(),
}


def test_deep_nesting_parsed_in_a_child(with_good: FileStore) -> None:
    paths = {name: plant(with_good, name, data) for name, data in DEEP.items()}
    proc = python(
        CHILD_LIST,
        str(with_good.root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        stop(proc)
    assert proc.returncode == 0, f"child died ({proc.returncode}): {err[-2000:]}"
    lines = out.splitlines()
    assert lines[0] == ",".join(sorted(GOOD_IDS))
    assert sorted(lines[1:]) == sorted(f"problem {p.name} True" for p in paths.values())
    for path in paths.values():
        assert not path.exists()
    assert len(os.listdir(with_good.quarantine_dir)) == len(DEEP)
    # and in this process, the copies are still reported
    listing = with_good.list()
    assert [s.id for s in listing.sessions] == sorted(GOOD_IDS)
    assert len(listing.problems) == len(DEEP)


# --- ids that try to escape -------------------------------------------------------------

BAD_IDS = [
    "../../etc/passwd",
    "../x",
    "..",
    "a/b",
    "/etc/passwd",
    "=x",
    "=abc",
    "-rf",
    "",
    "a" * 300,
    "ABC",
    "a b",
    ".hidden",
    "abc\x00def",
    "abc\n",
    "ab",
    "%2e%2e",
    "abc.yaml",
]


def _operations(store: FileStore, bad: str) -> list[tuple[str, object]]:
    def with_lock() -> None:
        with store.lock(bad):
            pass

    return [
        ("get", lambda: store.get(bad)),
        ("update", lambda: store.update(bad, lambda s: s.evolve(name="x"))),
        ("delete", lambda: store.delete(bad)),
        ("lock", with_lock),
        ("lock-timeout-0", lambda: store.lock(bad, timeout=0)),
        ("exists", lambda: store.exists(bad)),
        ("path_for", lambda: store.path_for(bad)),
        ("create", lambda: store.create(make_session("abc").evolve(id=bad))),
    ]


@pytest.mark.parametrize("bad", BAD_IDS, ids=lambda v: repr(v)[:20])
@pytest.mark.parametrize("prepared", [False, True], ids=["fresh", "existing"])
def test_bad_ids_refused_before_any_file_access(
    tmp_path: pathlib.Path, root: pathlib.Path, bad: str, prepared: bool
) -> None:
    store = FileStore(root)
    if prepared:
        store.create(make_session("abc"))
    before = snapshot(tmp_path)
    for what, call in _operations(store, bad):
        with pytest.raises(exc.InvalidSessionId) as info:
            call()  # type: ignore[operator]
        assert info.value.exit_code == exc.EXIT_USAGE, what
        assert snapshot(tmp_path) == before, f"{what}({bad!r}) touched the disk"


@pytest.mark.parametrize("bad", [b for b in BAD_IDS if b not in ("ABC", "ab", "abc.yaml")])
def test_resolve_refuses_bad_references(
    tmp_path: pathlib.Path, root: pathlib.Path, bad: str
) -> None:
    store = FileStore(root)
    store.create(make_session("abc"))
    before = snapshot(tmp_path)
    with pytest.raises(exc.InvalidSessionId) as info:
        store.resolve(bad)
    assert info.value.exit_code == exc.EXIT_USAGE
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("ref", ["ABC", "ab", "abc.yaml"])
def test_resolve_name_shaped_non_ids_are_just_not_found(
    tmp_path: pathlib.Path, root: pathlib.Path, ref: str
) -> None:
    """Valid names that are not ids: looked up by name, never used as a path."""
    store = FileStore(root)
    store.create(make_session("abcdef"))
    before = snapshot(tmp_path)
    if ref == "ab":
        assert store.resolve(ref).id == "abcdef"  # a unique prefix
    else:
        with pytest.raises(exc.SessionNotFound):
            store.resolve(ref)
    assert snapshot(tmp_path) == before


def test_traversal_targets_are_untouched(tmp_path: pathlib.Path, root: pathlib.Path) -> None:
    """A file where `../` would lead stays exactly as it was."""
    outside = tmp_path / "session-x.yaml"
    outside.write_bytes(b"precious")
    store = FileStore(root)
    store.create(make_session("abc"))
    for bad in ("../../session-x", "../../../session-x", "../../x"):
        for _what, call in _operations(store, bad):
            with pytest.raises(exc.InvalidSessionId):
                call()  # type: ignore[operator]
    assert outside.read_bytes() == b"precious"
    assert sorted(os.listdir(tmp_path)) == ["project", "session-x.yaml"]


def test_a_device_named_like_a_record_is_never_opened(
    with_good: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = with_good.path_for("dev001")
    try:
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null's numbers
    except PermissionError:
        pytest.skip("mknod needs root")
    opened: list[str] = []
    real_open = os.open

    def tracking(target: object, *args: object, **kwargs: object) -> int:
        opened.append(str(target))
        return real_open(target, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", tracking)
    with pytest.raises(exc.CorruptRecord, match="a device"):
        with_good.get("dev001")
    listing = with_good.list()
    monkeypatch.undo()
    assert str(path) not in opened
    assert [s.id for s in listing.sessions] == sorted(GOOD_IDS)
    assert listing.problem_ids == {"dev001"}


def test_problems_never_carry_escape_codes(with_good: FileStore) -> None:
    """Problems get printed: what a file says must not drive the terminal."""
    plant(with_good, "esc001", b"id: esc001\nstatus: \x1b[2J\x1b]0;owned\x07\n")
    plant(with_good, "esc002", b"id: esc002\nstatus: [\x1b[31m\n")
    plant(with_good, "esc003", record_bytes("esc003", environment='{"\\e[1m": null}'))
    (with_good.sessions_dir / "session-\x1b[2J\u202e.yaml").write_bytes(b"x")
    listing = with_good.list()
    assert len(listing.problems) == 4
    for problem in listing.problems:
        for text in (str(problem), *(v or "" for v in problem.to_dict().values())):
            assert text.isprintable(), text
    with pytest.raises(exc.CorruptRecord) as info:
        with_good.get("esc001")
    assert str(info.value).isprintable()
