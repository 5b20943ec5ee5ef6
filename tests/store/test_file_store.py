"""FileStore basics: CRUD, revisions, listing, references, permissions, secrets, cache."""

from __future__ import annotations

import gc
import os
import pathlib
import stat
import time

import pytest

from amux_tmux import exc
from amux_tmux.model import Session, Status
from amux_tmux.store import FileStore, Listing, Query, atomic, codec
from amux_tmux.store import file as file_mod
from tests.store.conftest import make_session, temp_files


def write_raw(store: FileStore, session: Session) -> pathlib.Path:
    """Put a record on disk the way another process would, bypassing the store API."""
    store.ensure_dirs()
    path = store.path_for(session.id)
    atomic.write_durable(path, codec.encode(session.to_dict()))
    return path


# --- create / get / update / delete ---------------------------------------------------


def test_create_then_get(fstore: FileStore) -> None:
    written = fstore.create(make_session("abc", name="first", command=("claude", "--x")))
    assert written.revision == 1
    got = fstore.get("abc")
    assert got == written
    assert got.command == ("claude", "--x")
    assert fstore.exists("abc")
    assert fstore.path_for("abc").name == "session-abc.yaml"


def test_create_refuses_an_existing_id(fstore: FileStore) -> None:
    fstore.create(make_session("abc", name="first"))
    with pytest.raises(exc.StoreError, match="already exists"):
        fstore.create(make_session("abc", name="second"))
    assert fstore.get("abc").name == "first"


def test_update_increments_revision_each_write(fstore: FileStore) -> None:
    fstore.create(make_session("abc"))
    revisions = []
    for n in range(5):
        updated = fstore.update("abc", lambda s, n=n: s.evolve(environment={"N": str(n)}))
        revisions.append(updated.revision)
        assert fstore.get("abc") == updated
    assert revisions == [2, 3, 4, 5, 6]
    assert fstore.get("abc").environment == {"N": "4"}


def test_update_sees_latest_and_advances_updated_at(fstore: FileStore) -> None:
    created = fstore.create(make_session("abc"))
    seen: list[Session] = []

    def mutate(s: Session) -> Session:
        seen.append(s)
        return s.transition(Status.STARTING)

    updated = fstore.update("abc", mutate)
    assert seen == [created]
    assert updated.status is Status.STARTING
    assert updated.updated_at >= created.updated_at
    assert updated.created_at == created.created_at


@pytest.mark.parametrize("identity", [True, False])
def test_unchanged_update_writes_nothing(fstore: FileStore, identity: bool) -> None:
    fstore.create(make_session("abc"))
    path = fstore.path_for("abc")
    before = path.read_bytes()
    ino = path.stat().st_ino
    result = fstore.update("abc", (lambda s: s) if identity else (lambda s: s.evolve()))
    assert result.revision == 1
    assert path.read_bytes() == before
    assert path.stat().st_ino == ino


def test_update_refuses_an_id_change(fstore: FileStore) -> None:
    fstore.create(make_session("abc"))
    with pytest.raises(exc.StoreError):
        fstore.update("abc", lambda s: s.evolve(id="xyz"))
    assert fstore.get("abc").revision == 1
    assert not fstore.exists("xyz")


def test_update_exception_in_mutate_leaves_record(fstore: FileStore) -> None:
    fstore.create(make_session("abc"))
    before = fstore.path_for("abc").read_bytes()

    def boom(_s: Session) -> Session:
        raise exc.InvalidTransition("abc", "created", "running")

    with pytest.raises(exc.InvalidTransition):
        fstore.update("abc", boom)
    assert fstore.path_for("abc").read_bytes() == before
    # the lock was released: another update goes through at once
    assert fstore.update("abc", lambda s: s.evolve(name="n")).revision == 2


def test_update_and_delete_missing(fstore: FileStore) -> None:
    with pytest.raises(exc.SessionNotFound) as info:
        fstore.update("nope", lambda s: s)
    assert info.value.exit_code == exc.EXIT_NOT_FOUND
    with pytest.raises(exc.SessionNotFound):
        fstore.delete("nope")
    with pytest.raises(exc.SessionNotFound):
        fstore.get("nope")


def test_get_before_any_directory_exists(root: pathlib.Path) -> None:
    store = FileStore(root)
    with pytest.raises(exc.SessionNotFound):
        store.get("abc")
    assert store.list().sessions == []
    assert not (root / ".amux").exists()  # reading never creates the store


def test_delete(fstore: FileStore) -> None:
    fstore.create(make_session("abc"))
    removed = fstore.delete("abc")
    assert removed.id == "abc"
    assert not fstore.exists("abc")
    with pytest.raises(exc.SessionNotFound):
        fstore.get("abc")
    assert fstore.list().sessions == []
    assert fstore.lock_path("abc").exists()  # lock files are never deleted


def test_delete_check_can_refuse(fstore: FileStore) -> None:
    fstore.create(make_session("abc", status=Status.RUNNING))

    def refuse(s: Session) -> None:
        raise exc.SessionIsLive(s.id)

    with pytest.raises(exc.SessionIsLive):
        fstore.delete("abc", check=refuse)
    assert fstore.get("abc").status is Status.RUNNING


def test_create_writes_no_temp_files(fstore: FileStore) -> None:
    for i in range(5):
        fstore.create(make_session(f"s{i:02d}"))
    assert temp_files(fstore.sessions_dir) == []
    assert sorted(os.listdir(fstore.sessions_dir)) == [f"session-s{i:02d}.yaml" for i in range(5)]


def test_new_id_avoids_records_and_locks(
    fstore: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    fstore.create(make_session("aaaaaaaaaa"))
    fstore.ensure_dirs()
    fstore.lock_path("bbbbbbbbbb").touch()
    candidates = iter([bytes.fromhex("aaaaaaaaaa"), bytes.fromhex("bbbbbbbbbb"), b"\xab" * 5])
    monkeypatch.setattr("amux_tmux.model.os.urandom", lambda _n: next(candidates))
    assert fstore.new_id() == "ababababab"


# --- list -------------------------------------------------------------------------------


@pytest.fixture
def populated(fstore: FileStore) -> FileStore:
    t = "2026-01-01T00:00:0{}.000000Z"
    records = [
        make_session("ccc", created_at=t.format(1), agent_id="claude", workspace_id="w1"),
        make_session("aaa", created_at=t.format(2), agent_id="codex", workspace_id="w1"),
        make_session("bbb", created_at=t.format(2), agent_id="claude", workspace_id="w2"),
        make_session("ddd", created_at=t.format(0), status=Status.RUNNING, agent_id="claude"),
        make_session("eee", created_at=t.format(3), status=Status.STOPPED, workspace_id="w1"),
    ]
    for record in records:
        fstore.create(record)
    return fstore


def ids(found: Listing | list[Session]) -> list[str]:
    return [s.id for s in (found.sessions if isinstance(found, Listing) else found)]


def test_list_sorted_by_created_at_then_id(populated: FileStore) -> None:
    assert ids(populated.list()) == ["ddd", "ccc", "aaa", "bbb", "eee"]


def test_list_filters(populated: FileStore) -> None:
    assert ids(populated.list(Query(status={Status.RUNNING}))) == ["ddd"]
    assert ids(populated.list(Query(status={Status.CREATED, Status.STOPPED}))) == [
        "ccc",
        "aaa",
        "bbb",
        "eee",
    ]
    assert ids(populated.list(Query(status=set()))) == []
    assert ids(populated.list(Query(agent_id="claude"))) == ["ddd", "ccc", "bbb"]
    assert ids(populated.list(Query(workspace_id="w1"))) == ["ccc", "aaa", "eee"]
    assert ids(populated.list(Query(agent_id="claude", workspace_id="w1"))) == ["ccc"]
    assert ids(populated.list(Query(agent_id="nobody"))) == []
    assert ids(populated.list(Query(include_ended=False))) == ["ddd", "ccc", "aaa", "bbb"]


def test_list_limit_and_offset(populated: FileStore) -> None:
    assert ids(populated.list(Query(limit=2))) == ["ddd", "ccc"]
    assert ids(populated.list(Query(limit=2, offset=2))) == ["aaa", "bbb"]
    assert ids(populated.list(Query(offset=4))) == ["eee"]
    assert ids(populated.list(Query(offset=9))) == []
    assert ids(populated.list(Query(limit=0))) == []
    assert ids(populated.list(Query(agent_id="claude", limit=1, offset=1))) == ["ccc"]
    listing = populated.list(Query(agent_id="claude", limit=1))
    assert listing.total == 3


def test_list_ignores_foreign_and_temp_files(populated: FileStore) -> None:
    d = populated.sessions_dir
    (d / ".tmp-abc.yaml").write_text("garbage: [")
    (d / "session-aaa.yaml~").write_text("backup")
    (d / "README").write_text("hi")
    listing = populated.list()
    assert ids(listing) == ["ddd", "ccc", "aaa", "bbb", "eee"]
    assert listing.problems == []
    assert (d / ".tmp-abc.yaml").exists()


# --- resolve ----------------------------------------------------------------------------


def test_resolve(fstore: FileStore) -> None:
    fstore.create(make_session("abc111", name="alpha"))
    fstore.create(make_session("abc222", name="beta"))
    fstore.create(make_session("xyz333", name="abc"))
    assert fstore.resolve("abc111").id == "abc111"
    assert fstore.resolve("abc2").id == "abc222"
    assert fstore.resolve("xy").id == "xyz333"
    assert fstore.resolve("beta").id == "abc222"
    # A name that is also another session's id prefix could mean either.
    with pytest.raises(exc.AmbiguousReference) as both:
        fstore.resolve("abc")
    assert both.value.candidates == ("abc111", "abc222", "xyz333")
    with pytest.raises(exc.AmbiguousReference) as info:
        fstore.resolve("ab")
    assert info.value.candidates == ("abc111", "abc222")
    assert info.value.exit_code == exc.EXIT_USAGE
    with pytest.raises(exc.SessionNotFound) as missing:
        fstore.resolve("qqq")
    assert missing.value.exit_code == exc.EXIT_NOT_FOUND
    with pytest.raises(exc.SessionNotFound):
        fstore.resolve("Gamma")


def test_resolve_repeated_name_prefers_the_live_one(fstore: FileStore) -> None:
    fstore.create(make_session("aaa", name="job", status=Status.STOPPED))
    fstore.create(make_session("bbb", name="job", status=Status.RUNNING))
    assert fstore.resolve("job").id == "bbb"
    fstore.update("bbb", lambda s: s.transition(Status.STOPPED))
    with pytest.raises(exc.AmbiguousReference) as info:
        fstore.resolve("job")
    assert info.value.candidates == ("aaa", "bbb")


# --- permissions ------------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0o000, 0o077, 0o022])
@pytest.mark.usefixtures("umask")
def test_modes_whatever_the_umask(root: pathlib.Path, mask: int) -> None:
    os.umask(mask)
    store = FileStore(root)
    store.create(make_session("abc", environment={"N": "1"}))
    store.update("abc", lambda s: s.evolve(name="x"))
    with store.store_lock("reconcile", 1.0):
        pass
    (store.sessions_dir / "session-bad.yaml").write_bytes(b"status: no\n")
    os.chmod(store.sessions_dir / "session-bad.yaml", 0o600)
    (store.sessions_dir / "session-worse.yaml").write_bytes(b"status: [\n")
    os.chmod(store.sessions_dir / "session-worse.yaml", 0o600)
    time.sleep(file_mod.RACY_WINDOW_NS / 1e9)  # so that the index takes the record
    assert len(store.list().problems) == 2
    os.umask(0o022)

    amux = root / ".amux"
    dirs = [amux, *[p for p in amux.rglob("*") if p.is_dir()]]
    files = [p for p in amux.rglob("*") if p.is_file() and p.name != ".gitignore"]
    assert {p.name for p in dirs} == {".amux", "sessions", "locks", "quarantine", "run", "logs"}
    assert {p.parent.name for p in files} == {".amux", "sessions", "locks", "quarantine"}
    assert {p.name for p in files if p.parent == amux} == {"store-id", "index"}
    for d in dirs:
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_missing_root_is_refused(tmp_path: pathlib.Path) -> None:
    store = FileStore(tmp_path / "typo" / "deeper")
    with pytest.raises(exc.UnsafePath):
        store.create(make_session("abc"))
    assert not (tmp_path / "typo").exists()


# --- symlinks ---------------------------------------------------------------------------


@pytest.mark.parametrize("which", [".amux", ".amux/sessions"])
def test_symlinked_store_dir_refused(
    root: pathlib.Path, tmp_path: pathlib.Path, which: str
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if which == ".amux/sessions":
        (root / ".amux").mkdir(mode=0o700)
        (elsewhere / "session-abc.yaml").write_bytes(
            codec.encode(make_session("abc").evolve(revision=1).to_dict())
        )
    (root / which).symlink_to(elsewhere)
    before = sorted(os.listdir(elsewhere))
    store = FileStore(root)
    with pytest.raises(exc.UnsafePath) as info:
        store.create(make_session("xyz"))
    assert info.value.exit_code == exc.EXIT_USAGE
    with pytest.raises(exc.UnsafePath):
        store.list().sessions
    if which == ".amux/sessions":
        with pytest.raises(exc.UnsafePath):
            store.get("abc")
    with pytest.raises(exc.UnsafePath):
        store.update("abc", lambda s: s.evolve(name="x"))
    with pytest.raises(exc.UnsafePath):
        store.delete("abc")
    assert sorted(os.listdir(elsewhere)) == before


def test_symlinked_record_is_refused_not_followed(
    fstore: FileStore, tmp_path: pathlib.Path
) -> None:
    fstore.create(make_session("good"))
    target = tmp_path / "victim.yaml"
    victim_bytes = codec.encode(make_session("abc").evolve(revision=1).to_dict())
    target.write_bytes(victim_bytes)
    link = fstore.path_for("abc")
    link.symlink_to(target)

    with pytest.raises(exc.StoreError):
        fstore.create(make_session("abc"))
    listing = fstore.list()
    assert ids(listing) == ["good"]
    assert len(listing.problems) == 1
    assert "symbolic link" in listing.problems[0].why
    assert not os.path.lexists(link)
    # The quarantined copy still names the id: nothing may act on it until it is gone.
    with pytest.raises(exc.CorruptRecord) as info:
        fstore.update("abc", lambda s: s.evolve(name="x"))
    assert info.value.quarantined_to is not None
    assert target.read_bytes() == victim_bytes  # never written through


def test_symlinked_record_refused_by_get(fstore: FileStore, tmp_path: pathlib.Path) -> None:
    fstore.ensure_dirs()
    target = tmp_path / "victim.yaml"
    target.write_bytes(codec.encode(make_session("abc").evolve(revision=1).to_dict()))
    fstore.path_for("abc").symlink_to(target)
    with pytest.raises((exc.SessionNotFound, exc.CorruptRecord)):
        fstore.get("abc")
    assert not os.path.lexists(fstore.path_for("abc"))
    assert target.exists()


# --- secrets ----------------------------------------------------------------------------

CANARY = "sk-ant-api03-CANARY0123456789abcdefCANARY"


def test_secrets_are_masked_before_writing(fstore: FileStore) -> None:
    env = {"ANTHROPIC_API_KEY": CANARY, "NODE_ENV": "production", "NOTE": f"x {CANARY} y"}
    created = fstore.create(make_session("abc", environment=env))
    updated = fstore.update(
        "abc", lambda s: s.evolve(environment={**s.environment, "OTHER_TOKEN": CANARY})
    )
    fstore.update("abc", lambda s: s.evolve(environment={**s.environment, "GH": CANARY}))
    assert created.environment["ANTHROPIC_API_KEY"] == "***"
    assert updated.environment["OTHER_TOKEN"] == "***"

    text = fstore.path_for("abc").read_text()
    assert 'ANTHROPIC_API_KEY: "***"' in text
    assert "NODE_ENV: production" in text
    got = fstore.get("abc")
    assert got.environment == {
        "ANTHROPIC_API_KEY": "***",
        "NODE_ENV": "production",
        "NOTE": "***",
        "OTHER_TOKEN": "***",
        "GH": "***",
    }
    needle = CANARY.encode()
    for path in fstore.root.rglob("*"):
        if path.is_file():
            assert needle not in path.read_bytes(), path
            assert b"CANARY" not in path.read_bytes(), path


# --- cache (the index and its in-process copy) -----------------------------------------


def rewrite_in_place(path: pathlib.Path, data: bytes) -> None:
    """Overwrite a file's bytes keeping its inode (as an editor with 'backupcopy' does)."""
    with open(path, "r+b") as f:
        f.write(data)
        f.truncate()


def same_size_variant(store: FileStore, session_id: str, old: str, new: str) -> bytes:
    data = store.path_for(session_id).read_bytes()
    assert len(old) == len(new)
    changed = data.replace(old.encode(), new.encode())
    assert changed != data
    assert len(changed) == len(data)
    return changed


def age(path: pathlib.Path, seconds: float) -> int:
    """Backdate ``path``'s mtime; utime sets its ctime to now, so wait out the racy window."""
    mtime = time.time_ns() - int(seconds * 1e9)
    os.utime(path, ns=(mtime, mtime))
    time.sleep(file_mod.RACY_WINDOW_NS / 1e9)
    return mtime


def test_cache_sees_atomic_replace_with_same_size_and_mtime(fstore: FileStore) -> None:
    fstore.create(make_session("abc", name="aaaa"))
    path = fstore.path_for("abc")
    mtime = age(path, 60)
    assert fstore.list().sessions[0].name == "aaaa"  # now cached (old mtime, outside racy window)
    data = same_size_variant(fstore, "abc", "name: aaaa", "name: bbbb")
    atomic.write_durable(path, data)  # another process: new inode, same size
    os.utime(path, ns=(mtime, mtime))
    assert fstore.list().sessions[0].name == "bbbb"


def test_cache_sees_in_place_edit_with_same_size(fstore: FileStore) -> None:
    fstore.create(make_session("abc", name="aaaa"))
    path = fstore.path_for("abc")
    age(path, 60)
    assert fstore.list().sessions[0].name == "aaaa"
    rewrite_in_place(path, same_size_variant(fstore, "abc", "name: aaaa", "name: bbbb"))
    age(path, 30)  # same inode, same size, different mtime
    assert fstore.list().sessions[0].name == "bbbb"


def test_cache_racy_window_forces_reread(fstore: FileStore) -> None:
    fstore.create(make_session("abc", name="aaaa"))
    path = fstore.path_for("abc")
    # Read within the racy window: a same-tick rewrite could hide behind the same mtime.
    mtime = age(path, 0.001)
    assert fstore.list().sessions[0].name == "aaaa"
    rewrite_in_place(path, same_size_variant(fstore, "abc", "name: aaaa", "name: bbbb"))
    os.utime(path, ns=(mtime, mtime))  # identical (inode, mtime, size)
    assert fstore.list().sessions[0].name == "bbbb"


def test_cache_hit_skips_reading(fstore: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    fstore.create(make_session("abc"))
    fstore.create(make_session("abd"))
    for sid in ("abc", "abd"):
        age(fstore.path_for(sid), 60)
    reads: list[int] = []
    real = file_mod._read_all
    monkeypatch.setattr(file_mod, "_read_all", lambda fd, n: reads.append(fd) or real(fd, n))
    first = fstore.list().sessions
    assert len(reads) == 2
    assert fstore.list().sessions == first
    assert len(reads) == 2  # served from the cache
    # get never trusts the cache
    assert fstore.get("abc") == first[0]
    assert len(reads) == 3


def test_cache_forgets_deleted_records(fstore: FileStore) -> None:
    fstore.create(make_session("abc"))
    age(fstore.path_for("abc"), 60)
    assert ids(fstore.list().sessions) == ["abc"]
    fstore.path_for("abc").unlink()  # removed by another process
    assert fstore.list().sessions == []
    with pytest.raises(exc.SessionNotFound):
        fstore.get("abc")


def test_update_by_another_store_instance_is_seen(root: pathlib.Path) -> None:
    one, two = FileStore(root), FileStore(root)
    one.create(make_session("abc", name="aaaa"))
    assert two.list().sessions[0].name == "aaaa"
    one.update("abc", lambda s: s.evolve(name="bbbb"))
    assert two.list().sessions[0].name == "bbbb"
    assert two.get("abc").revision == 2


# --- locks ------------------------------------------------------------------------------


def test_lock_files_live_under_locks_and_survive_release(fstore: FileStore) -> None:
    fstore.create(make_session("abc"))
    fstore.update("abc", lambda s: s.evolve(name="x"))
    with fstore.lock("abd"):
        assert (fstore.root / ".amux" / "locks" / "abd.lock").exists()
    lock_dir = fstore.root / ".amux" / "locks"
    assert sorted(os.listdir(lock_dir)) == ["_store-id.lock", "abc.lock", "abd.lock"]
    assert fstore.lock_path("abc").parent == lock_dir
    fstore.delete("abc")
    assert sorted(os.listdir(lock_dir)) == ["_store-id.lock", "abc.lock", "abd.lock"]
    # nothing lock-like next to the data
    assert all(n.startswith("session-") for n in os.listdir(fstore.sessions_dir))


def test_lock_is_reentrant_within_a_thread(fstore: FileStore) -> None:
    fstore.create(make_session("abc"))
    with fstore.lock("abc", timeout=0), fstore.lock("abc", timeout=0):
        updated = fstore.update("abc", lambda s: s.evolve(name="inner"))
    assert updated.revision == 2


def test_large_environment_value_is_written_quickly(fstore: FileStore) -> None:
    value = "p" * 40_000  # legal: the record stays far below codec.MAX_RECORD_BYTES
    started = time.perf_counter()
    fstore.create(make_session("abc", environment={"BLOB": value}))
    elapsed = time.perf_counter() - started
    assert fstore.get("abc").environment["BLOB"] == value
    assert elapsed < 0.25, f"create took {elapsed:.2f}s"


@pytest.mark.parametrize("enabled", [True, False], ids=["collector-on", "collector-off"])
def test_list_leaves_the_cycle_collector_as_it_found_it(store: FileStore, enabled: bool) -> None:
    """list pauses the collector while it builds records, and only that long."""
    (gc.enable if enabled else gc.disable)()
    try:
        store.list()
        assert gc.isenabled() is enabled
    finally:
        gc.enable()
