"""``FileStore``: one YAML file per session under ``<root>/.amux/sessions/``.

The file system is the source of truth. Every change is a read-modify-write under
the record's own lock with a durable atomic write; readers take no lock because a
rename never exposes a half-written file. The in-process cache only saves re-reading
a file whose ``(inode, mtime_ns, size)`` is unchanged and whose mtime is old enough
that a same-tick rewrite could not hide behind it (ext4 reuses inodes at once).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from amux_tmux import exc
from amux_tmux.model import NAME_RE, Session, generate_id, is_valid_id, utcnow, validate_id
from amux_tmux.secrets import mask_environment
from amux_tmux.store import atomic, codec, locks
from amux_tmux.store.base import Listing, Mutation, Problem, Query

AMUX_DIR = ".amux"
RECORD_PREFIX = "session-"
RECORD_SUFFIX = ".yaml"
# Coarser than any file system timestamp tick we know of (ext4 follows the jiffy clock).
RACY_WINDOW_NS = 100_000_000
QUARANTINE_LOCK_TIMEOUT = 0.5
STORE_ID_FILE = "store-id"
STORE_ID_BYTES = 8
#: Written when the store is created, so `git status` in the project stays clean.
GITIGNORE = "# made by amux-tmux: session records are local state\n*\n!.gitignore\n!config.yaml\n"


#: Problems met while reading (a module name: ``FileStore.list`` shadows the builtin).
_Problems = list[Problem]


@dataclass(frozen=True, slots=True)
class _Cached:
    ino: int
    mtime_ns: int
    size: int
    read_at_ns: int
    session: Session


class FileStore:
    """Session records as YAML files, safe for many processes at once.

    Parameters
    ----------
    root : Path
        The project root; records live in ``root/.amux/sessions``.
    lock_timeout : float
        Seconds a lifecycle step waits for a record's lock before ``LockTimeout``.
    """

    def __init__(self, root: Path, lock_timeout: float = locks.DEFAULT_TIMEOUT) -> None:
        self.root = Path(root)
        self.amux_dir = self.root / AMUX_DIR
        self.sessions_dir = self.amux_dir / "sessions"
        self.locks_dir = self.amux_dir / "locks"
        self.quarantine_dir = self.amux_dir / "quarantine"
        self.run_dir = self.amux_dir / "run"
        self.logs_dir = self.amux_dir / "logs"
        self.lock_timeout = lock_timeout
        self._cache: dict[str, _Cached] = {}
        self._dirs_ready = False
        self._store_id: str | None = None

    # --- paths ---------------------------------------------------------------------

    def path_for(self, session_id: str) -> Path:
        """Return the record path for a validated id."""
        return self.sessions_dir / f"{RECORD_PREFIX}{validate_id(session_id)}{RECORD_SUFFIX}"

    def lock_path(self, name: str) -> Path:
        """Return the lock file for a record id or a named store-wide lock."""
        return self.locks_dir / f"{name}.lock"

    def log_path(self, session_id: str) -> Path:
        """Return where the pane output of ``session_id`` is kept."""
        return self.logs_dir / f"{validate_id(session_id)}.log"

    def runtime_dir(self) -> Path:
        """Return ``.amux/run`` (0700), for one-shot FIFOs; created if missing."""
        self.ensure_dirs()
        return self.run_dir

    @property
    def store_id(self) -> str | None:
        """This store's id from ``.amux/store-id``; ``None`` if there is none yet."""
        if self._store_id is None:
            try:
                fd = os.open(
                    self.amux_dir / STORE_ID_FILE,
                    os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                )
            except OSError:
                return None
            try:
                text = os.read(fd, 256).decode("ascii", "replace").strip()
            finally:
                os.close(fd)
            if not is_valid_id(text):
                raise exc.StoreError(
                    f"{self.amux_dir / STORE_ID_FILE} does not hold a store id; "
                    "restore it or remove it (sessions tagged with the old id become foreign)"
                )
            self._store_id = text
        return self._store_id

    def ensure_store_id(self) -> str:
        """Return the store id, creating the store and a random id on first use."""
        existing = self.store_id
        if existing is not None:
            return existing
        self.ensure_dirs()
        with self.store_lock("store-id", self.lock_timeout):
            existing = self.store_id
            if existing is None:
                atomic.write_durable(
                    self.amux_dir / STORE_ID_FILE, (os.urandom(STORE_ID_BYTES).hex() + "\n").encode()
                )
                existing = self.store_id
        assert existing is not None
        return existing

    def ensure_dirs(self) -> None:
        """Create the store's directories 0700, refusing symlinks where we write."""
        if self._dirs_ready:
            return
        if not self.root.is_dir():
            # Creating a mistyped --root (and its parents) would scatter records.
            raise exc.UnsafePath(str(self.root), "the root directory does not exist")
        with contextlib.suppress(FileExistsError):
            os.mkdir(self.amux_dir, 0o700)
            with contextlib.suppress(OSError):
                atomic.write_durable(self.amux_dir / ".gitignore", GITIGNORE.encode(), 0o644)
        for directory in (
            self.amux_dir,
            self.sessions_dir,
            self.locks_dir,
            self.quarantine_dir,
            self.run_dir,
            self.logs_dir,
        ):
            with contextlib.suppress(FileExistsError):
                os.mkdir(directory, 0o700)
            self._check_real_dir(directory)
            # mkdir's mode is filtered by the umask, and an existing directory may have
            # been made by hand: session records are nobody else's business.
            if stat.S_IMODE(os.stat(directory).st_mode) != 0o700:
                os.chmod(directory, 0o700)
        atomic.sweep_temp_files(self.sessions_dir)
        self._dirs_ready = True

    def _check_real_dir(self, directory: Path) -> bool:
        """Return whether ``directory`` exists; raise if it is a symlink or a file."""
        try:
            st = os.lstat(directory)
        except FileNotFoundError:
            return False
        if stat.S_ISLNK(st.st_mode):
            raise exc.UnsafePath(str(directory), "it is a symbolic link")
        if not stat.S_ISDIR(st.st_mode):
            raise exc.UnsafePath(str(directory), "it is not a directory")
        return True

    # --- locking -------------------------------------------------------------------

    def lock(
        self, session_id: str, timeout: float | None = None
    ) -> contextlib.AbstractContextManager[None]:
        """Hold the lock of record ``session_id`` (re-entrant within one thread)."""
        validate_id(session_id)
        self.ensure_dirs()
        wait = self.lock_timeout if timeout is None else timeout
        return locks.hold(self.lock_path(session_id), f"session {session_id}", wait)

    def store_lock(self, name: str, timeout: float) -> contextlib.AbstractContextManager[None]:
        """Hold a store-wide named lock such as ``reconcile``."""
        self.ensure_dirs()
        return locks.hold(self.lock_path(f"_{name}"), name, timeout)

    # --- reading -------------------------------------------------------------------

    def exists(self, session_id: str) -> bool:
        """Return whether a record file exists for ``session_id``."""
        return os.path.lexists(self.path_for(session_id))

    def new_id(self) -> str:
        """Return an id that neither a record nor a lock file uses."""
        return generate_id(
            lambda candidate: self.exists(candidate) or os.path.lexists(self.lock_path(candidate))
        )

    def get(self, session_id: str) -> Session:
        """Return the record for ``session_id`` as it is on disk now.

        Raises
        ------
        SessionNotFound
            No such record.
        CorruptRecord
            The file cannot be used (it says why, and what to do).
        """
        path = self.path_for(session_id)
        if not self._check_real_dir(self.sessions_dir):
            raise exc.SessionNotFound(session_id)
        problems: _Problems = []
        session = self._load(path, session_id, problems, use_cache=False)
        if session is None:
            if problems:
                p = problems[-1]
                raise exc.CorruptRecord(p.path, p.why, p.quarantined_to)
            raise exc.SessionNotFound(session_id)
        return session

    def list(self, query: Query | None = None) -> Listing:
        """Return records matching ``query``, sorted by ``(created_at, id)``.

        A file that cannot be used is one :class:`Problem` in the listing; it never
        stops the listing.
        """
        q = query or Query()
        problems: _Problems = []
        sessions = [
            s
            for s in self._iter_all(problems)
            if (q.status is None or s.status in q.status)
            and (q.include_ended or not s.status.ended)
            and (q.agent_id is None or s.agent_id == q.agent_id)
            and (q.workspace_id is None or s.workspace_id == q.workspace_id)
        ]
        sessions.sort(key=lambda s: (s.created_at, s.id))
        end = None if q.limit is None else q.offset + q.limit
        return Listing(sessions[q.offset : end], problems, len(sessions))

    def _iter_all(self, problems: _Problems) -> Iterator[Session]:
        self._check_real_dir(self.amux_dir)
        if not self._check_real_dir(self.sessions_dir):
            return
        seen: set[str] = set()
        with os.scandir(self.sessions_dir) as entries:
            names = [e.name for e in entries]
        for name in names:
            if not (name.startswith(RECORD_PREFIX) and name.endswith(RECORD_SUFFIX)):
                continue  # temp files, editor backups, anything not ours
            session_id = name[len(RECORD_PREFIX) : -len(RECORD_SUFFIX)]
            path = self.sessions_dir / name
            try:
                validate_id(session_id)
            except exc.InvalidSessionId:
                problems.append(
                    self._quarantine(path, None, "file name holds no valid session id")
                )
                continue
            seen.add(name)
            session = self._load(path, session_id, problems, use_cache=True)
            if session is not None:
                yield session
        for stale in self._cache.keys() - seen:
            del self._cache[stale]

    def _load(
        self, path: Path, session_id: str, problems: _Problems, *, use_cache: bool
    ) -> Session | None:
        """Read one record; ``None`` (and a problem, unless it vanished) if unusable."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            self._cache.pop(path.name, None)
            return None
        except OSError as err:
            if err.errno == errno.ELOOP:
                problems.append(self._quarantine(path, session_id, "record is a symbolic link"))
                return None
            raise exc.StoreError(f"cannot read {path}: {err.strerror}") from None
        try:
            st = os.fstat(fd)
            cached = self._cache.get(path.name)
            if (
                use_cache
                and cached is not None
                and cached.ino == st.st_ino
                and cached.mtime_ns == st.st_mtime_ns
                and cached.size == st.st_size
                and cached.read_at_ns - st.st_mtime_ns > RACY_WINDOW_NS
            ):
                return cached.session
            if not stat.S_ISREG(st.st_mode):
                why = "record is not a regular file"
            elif st.st_size > codec.MAX_RECORD_BYTES:
                why = f"file is {st.st_size} bytes, over the {codec.MAX_RECORD_BYTES} byte limit"
            else:
                why = ""
            raw = b"" if why else _read_all(fd, st.st_size)
        finally:
            os.close(fd)
        read_at = time.time_ns()
        if not why:
            try:
                session = Session.from_dict(codec.decode(raw))
                if session.id != session_id:
                    raise ValueError(f"id {session.id!r} does not match the file name")
            except ValueError as err:
                why = str(err)
            else:
                self._cache[path.name] = _Cached(
                    st.st_ino, st.st_mtime_ns, st.st_size, read_at, session
                )
                return session
        self._cache.pop(path.name, None)
        problems.append(self._quarantine(path, session_id, why, inode=st.st_ino))
        return None

    # --- quarantine ----------------------------------------------------------------

    def _quarantine(
        self, path: Path, session_id: str | None, why: str, inode: int | None = None
    ) -> Problem:
        """Move a bad file aside so it can be inspected and never breaks a listing.

        Under the record's lock, and only if the file is still the one judged bad: a
        writer may have replaced it in the meantime.
        """
        moved_to: str | None = None
        try:
            self.ensure_dirs()
            guard: contextlib.AbstractContextManager[None] = (
                self.lock(session_id, QUARANTINE_LOCK_TIMEOUT)
                if session_id is not None
                else contextlib.nullcontext()
            )
            with guard:
                st = os.lstat(path)
                if inode is not None and st.st_ino != inode:
                    # Replaced by a writer since we read it; the next read decides.
                    return Problem(str(path), "changed while being read", session_id)
                stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
                target = self.quarantine_dir / f"{path.name}.{stamp}.{st.st_ino}.bad"
                os.replace(path, target)
                atomic.fsync_dir(self.sessions_dir)
                moved_to = str(target)
        except (OSError, exc.AmuxError):
            pass  # reported as bad but left in place; list still goes on
        return Problem(str(path), why, session_id, moved_to)

    # --- writing -------------------------------------------------------------------

    def create(self, session: Session) -> Session:
        """Write a new record with revision 1.

        Raises
        ------
        StoreError
            If a record with this id exists already.
        """
        path = self.path_for(session.id)
        self.ensure_store_id()
        with self.lock(session.id):
            if os.path.lexists(path):
                raise exc.StoreError(f"session {session.id} already exists")
            return self._write(path, session.evolve(revision=1))

    def update(self, session_id: str, mutate: Mutation) -> Session:
        """Apply ``mutate`` to the current record under its lock and write it back.

        The record is re-read inside the lock, so ``mutate`` always sees the latest
        revision. Returning the record unchanged skips the write.
        """
        path = self.path_for(session_id)
        with self.lock(session_id):
            current = self.get(session_id)
            changed = mutate(current)
            if changed is current or changed == current:
                return current
            if changed.id != current.id:
                raise exc.StoreError("a record's id cannot change")
            return self._write(path, changed.evolve(revision=current.revision + 1))

    def delete(self, session_id: str, check: Callable[[Session], None] | None = None) -> Session:
        """Remove a record under its lock; ``check`` may raise to refuse.

        The lock file stays: deleting it would let two processes lock two inodes.
        """
        path = self.path_for(session_id)
        with self.lock(session_id):
            current = self.get(session_id)
            if check is not None:
                check(current)
            try:
                os.unlink(path)
            except FileNotFoundError:
                raise exc.SessionNotFound(session_id) from None
            except OSError as err:
                raise exc.StoreError(
                    f"could not remove session {session_id}: {err.strerror or err}"
                ) from None
            with contextlib.suppress(OSError):
                atomic.fsync_dir(self.sessions_dir)  # the unlink happened; durability only
            self._cache.pop(path.name, None)
            return current

    def discard(self, session_id: str) -> None:
        """Remove the file of ``session_id`` whatever it holds (a record that cannot be read).

        Raises
        ------
        SessionNotFound
            There is no such file.
        """
        path = self.path_for(session_id)
        with self.lock(session_id):
            try:
                os.unlink(path)
            except FileNotFoundError:
                raise exc.SessionNotFound(session_id) from None
            except OSError as err:
                raise exc.StoreError(f"could not remove {path}: {err.strerror or err}") from None
            with contextlib.suppress(OSError):
                atomic.fsync_dir(self.sessions_dir)
            self._cache.pop(path.name, None)

    def _write(self, path: Path, session: Session) -> Session:
        # Masking here means no caller can put a raw secret on disk, by mistake or not.
        session = session.evolve(
            environment=mask_environment(session.environment), updated_at=utcnow()
        )
        data = codec.encode(session.to_dict())
        try:
            atomic.write_durable(path, data)
        except atomic.NotDurableError as err:
            self._cache.pop(path.name, None)
            raise exc.StoreError(
                f"session {session.id} was written, but flushing its directory failed "
                f"({err.strerror or err}); it may not survive a crash"
            ) from None
        except OSError as err:
            raise exc.StoreError(
                f"could not write session {session.id}: {err.strerror or err}; "
                "the previous record is unchanged"
            ) from None
        # Not cached: a write is by definition inside the racy window; the next read fills it.
        self._cache.pop(path.name, None)
        return session

    # --- references ----------------------------------------------------------------

    def resolve(self, ref: str) -> Session:
        """Find one record by full id, exact name, or unique id prefix.

        Raises
        ------
        InvalidSessionId
            ``ref`` could be neither an id, a prefix nor a name.
        AmbiguousReference
            Several records match.
        SessionNotFound
            None does.
        """
        if NAME_RE.fullmatch(ref) is None:
            raise exc.InvalidSessionId(ref)
        with contextlib.suppress(exc.InvalidSessionId, exc.SessionNotFound):
            return self.get(ref)
        everything = self.list().sessions
        named = [s for s in everything if s.name == ref]
        if len(named) > 1:
            # Names are unique among live sessions; ended ones may repeat a name.
            named = [s for s in named if not s.status.ended] or named
        if len(named) == 1:
            return named[0]
        if named:
            raise exc.AmbiguousReference(ref, [s.id for s in named])
        prefixed = [s for s in everything if s.id.startswith(ref)]
        if len(prefixed) == 1:
            return prefixed[0]
        if prefixed:
            raise exc.AmbiguousReference(ref, [s.id for s in prefixed])
        raise exc.SessionNotFound(ref)


def _read_all(fd: int, size_hint: int) -> bytes:
    chunks: list[bytes] = []
    remaining = codec.MAX_RECORD_BYTES + 1
    while remaining > 0:
        chunk = os.read(fd, min(max(size_hint, 4096), remaining))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
