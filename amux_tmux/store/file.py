"""``FileStore``: one YAML file per session under ``<root>/.amux/sessions/``.

The file system is the source of truth. Every change is a read-modify-write under
the record's own lock with a durable atomic write; readers take no lock because a
rename never exposes a half-written file. ``list`` answers from ``.amux/index``
(:mod:`amux_tmux.store.index`) for every record whose ``(inode, mtime_ns, ctime_ns,
size)`` is unchanged since it was read well outside the file system's timestamp tick
(ext4 reuses inodes at once); any other record is read again.

A bad file is one bad file: hostile or non-YAML files are moved to ``.amux/quarantine/``
(their id kept in the new name), files that are YAML but break the schema stay where
they are, and both are reported on every ``list`` with their id, so the sessions
they name stay protected until a person fixes or removes them.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import heapq
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from amux_tmux import exc, logfile
from amux_tmux.model import NAME_RE, Session, generate_id, is_valid_id, utcnow, validate_id
from amux_tmux.secrets import mask_environment
from amux_tmux.store import atomic, codec, locks
from amux_tmux.store import index as idx
from amux_tmux.store.base import Listing, Mutation, Problem, Query

AMUX_DIR = ".amux"
RECORD_PREFIX = "session-"
RECORD_SUFFIX = ".yaml"
INDEX_FILE = "index"
QUARANTINE_SUFFIX = ".bad"
# Coarser than any file system timestamp tick we know of (ext4 follows the jiffy clock).
RACY_WINDOW_NS = 100_000_000
QUARANTINE_LOCK_TIMEOUT = 0.5
STORE_ID_FILE = "store-id"
STORE_ID_BYTES = 8
#: Written when the store is created, so `git status` in the project stays clean.
GITIGNORE = "# made by amux-tmux: session records are local state\n*\n!.gitignore\n!config.yaml\n"
# O_NONBLOCK: a FIFO opens at once (and is then refused) instead of waiting for a writer.
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
#: Fields a person can shorten when a new record is too large, and how.
_SHORTEN = {
    "agent_id": "the agent label (--agent)",
    "workspace_id": "the workspace label (--workspace)",
    "name": "the name (--name)",
    "command": "the command's arguments",
    "environment": "the -e values",
    "cwd": "the working directory (--cwd)",
}


# Aliases: inside FileStore, ``list`` is the method.
_Problems = list[Problem]
_Entries = list[idx.Entry]


class _Bad(Exception):
    """One record file cannot be used; ``hostile`` files go to quarantine."""

    def __init__(self, why: str, *, hostile: bool = False, inode: int = 0) -> None:
        super().__init__(why)
        self.why = _shown(why)  # YAML errors quote the file, escape codes and all
        self.hostile = hostile
        #: The inode judged bad, if it was opened: quarantine moves only that one.
        self.inode = inode


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
        self.index_path = self.amux_dir / INDEX_FILE
        self.lock_timeout = lock_timeout
        # The last index seen, kept while the index file is unchanged (same process).
        self._entries: dict[str, idx.Entry] = {}
        self._entries_stamp: idx.Stamp | None = None
        self._index_suspect = False
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
        return logfile.log_path(self.root, validate_id(session_id))

    def runtime_dir(self) -> Path:
        """Return ``.amux/run`` (0700), for one-shot FIFOs; created if missing."""
        self.ensure_dirs()
        return self.run_dir

    @property
    def store_id(self) -> str | None:
        """This store's id from ``.amux/store-id``; ``None`` if there is none yet.

        The file also names the directory the id was made for. A copy of a project
        (``cp -a``, the original still in place with the same id) has no id of its own
        until it first writes: otherwise it would own, stop and reap the original's
        agents. A project that was moved keeps its id.
        """
        if self._store_id is None:
            found = _read_store_id(self.amux_dir)
            if found is None:
                return None
            ident, made_for = found
            if made_for is not None and made_for != self._real_root():
                original = _read_store_id(Path(made_for) / AMUX_DIR)
                if original is not None and original[0] == ident:
                    return None  # a copy: the original still holds this id
            self._store_id = ident
        return self._store_id

    def _real_root(self) -> str:
        return os.path.realpath(self.root)

    def ensure_store_id(self) -> str:
        """Return the store id, creating the store and a random id on first use (or
        when this store is a copy of another), and noting where it lives."""
        found = _read_store_id(self.amux_dir)
        if found is not None and found[1] == self._real_root():
            self._store_id = found[0]
            return found[0]
        self.ensure_dirs()
        with self.store_lock("store-id", self.lock_timeout):
            self._store_id = None
            current = self.store_id
            found = _read_store_id(self.amux_dir)
            if current is None or found is None or found[1] != self._real_root():
                ident = current or os.urandom(STORE_ID_BYTES).hex()
                try:
                    atomic.write_durable(
                        self.amux_dir / STORE_ID_FILE,
                        f"{ident}\n{self._real_root()}\n".encode("utf-8", "surrogateescape"),
                    )
                except OSError as err:
                    raise exc.StoreError(
                        f"could not write {self.amux_dir / STORE_ID_FILE}: {err.strerror or err}"
                    ) from None
                self._store_id = ident
        assert self._store_id is not None
        return self._store_id

    def ensure_dirs(self) -> None:
        """Create the store's directories 0700, refusing symlinks where we write."""
        if self._dirs_ready:
            return
        if not self.root.is_dir():
            # Creating a mistyped --root (and its parents) would scatter records.
            raise exc.UnsafePath(str(self.root), "the root directory does not exist")
        with contextlib.suppress(FileExistsError):
            os.mkdir(self.amux_dir, 0o700)
        self._check_real_dir(self.amux_dir)
        # Also when a person made .amux/ first (to write config.yaml); never replaced.
        with contextlib.suppress(OSError):
            fd = os.open(
                self.amux_dir / ".gitignore",
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o644,
            )
            try:
                os.write(fd, GITIGNORE.encode())
            finally:
                os.close(fd)
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
        atomic.sweep_temp_files(self.amux_dir)  # an index write that crashed
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

    # --- reading one record ------------------------------------------------------------

    def exists(self, session_id: str) -> bool:
        """Return whether a record file exists for ``session_id``."""
        return os.path.lexists(self.path_for(session_id))

    def new_id(self) -> str:
        """Return an id that no record, lock or quarantined file uses.

        Nor does it start with the name of any record, so that names and id prefixes
        never meet in :meth:`resolve`, nor is it all digits: typed unquoted into a
        record, ``0725325471`` is an octal number to YAML.
        """
        entries, problem_ids = self._catalogue()
        names = tuple({e.name for e in entries if e.name})
        taken = problem_ids | {e.session_id for e in entries}
        return generate_id(
            lambda candidate: (
                candidate in taken
                or candidate.isdigit()
                or candidate.startswith(names)
                or self.exists(candidate)
                or os.path.lexists(self.lock_path(candidate))
            )
        )

    def _catalogue(self) -> tuple[_Entries, frozenset[str]]:
        """Return every usable record's entry and every id with a problem (no decoding)."""
        problems: _Problems = []
        entries, _fresh = self._scan(problems)
        problems.extend(self._quarantined())
        return entries, frozenset(p.session_id for p in problems if p.session_id)

    def get(self, session_id: str) -> Session:
        """Return the record for ``session_id`` as it is on disk now.

        Raises
        ------
        SessionNotFound
            No such record.
        CorruptRecord
            The file (or only a quarantined copy) exists but cannot be used; the
            message says why, and what to do.
        """
        path = self.path_for(session_id)
        if not self._check_real_dir(self.sessions_dir):
            raise exc.SessionNotFound(session_id)
        try:
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):
                # Never opened: a device may act on open, a socket cannot be opened.
                raise _Bad(_not_regular(st.st_mode), hostile=True, inode=st.st_ino)
            session, _stamp = self._read(path, session_id)
        except FileNotFoundError:
            quarantined = [p for p in self._quarantined() if p.session_id == session_id]
            if quarantined:
                last = quarantined[-1]
                raise exc.CorruptRecord(last.path, last.why, last.quarantined_to) from None
            raise exc.SessionNotFound(session_id) from None
        except _Bad as bad:
            problem = self._problem(path, session_id, bad)
            raise exc.CorruptRecord(problem.path, problem.why, problem.quarantined_to) from None
        return session

    def _read(self, path: Path, session_id: str) -> tuple[Session, idx.Stamp]:
        """Read and check one record file.

        Raises
        ------
        FileNotFoundError
            It is gone.
        _Bad
            It cannot be used (and whether it is hostile).
        """
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except FileNotFoundError:
            raise
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.ENXIO):  # replaced by a link or a socket
                raise _Bad("record is not a regular file", hostile=True) from None
            raise _Bad(f"cannot read it: {err.strerror or err}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise _Bad(_not_regular(st.st_mode), hostile=True, inode=st.st_ino)
            if st.st_size > codec.MAX_RECORD_BYTES:
                raise _Bad(
                    f"file is {st.st_size} bytes, over the {codec.MAX_RECORD_BYTES} byte limit",
                    hostile=True,
                    inode=st.st_ino,
                )
            raw = _read_all(fd, st.st_size)
        except OSError as err:
            raise _Bad(f"cannot read it: {err.strerror or err}") from None
        finally:
            os.close(fd)
        try:
            session = Session.from_dict(codec.decode(raw))
        except codec.HostileRecord as err:
            raise _Bad(str(err), hostile=True, inode=st.st_ino) from None
        except ValueError as err:
            raise _Bad(str(err)) from None
        except Exception as err:  # one bad file must not stop a listing
            raise _Bad(f"cannot read it: {type(err).__name__}: {err}") from None
        if session.id != session_id:
            raise _Bad(f"its id {session.id!r} does not match the file name")
        return session, idx.stamp_of(st)

    def _problem(self, path: Path, session_id: str | None, bad: _Bad) -> Problem:
        """Turn a bad file into a problem, moving it to quarantine if it is hostile."""
        if bad.hostile:
            return self._quarantine(path, session_id, bad.why, bad.inode)
        return Problem(str(path), bad.why, session_id)

    # --- listing -------------------------------------------------------------------

    def list(self, query: Query | None = None) -> Listing:
        """Return records matching ``query``, sorted by ``(created_at, id)``.

        Filters, sorting and paging use the index; only the page's records are
        decoded. Every file that cannot be used, and every quarantined copy, is one
        :class:`Problem` in the listing; none of them stops it.
        """
        with without_gc():
            return self._list(query or Query())

    def _list(self, q: Query) -> Listing:
        problems: _Problems = []
        # With a page to fill, records read now are decoded again from their rows
        # rather than all kept in memory.
        entries, fresh = self._scan(problems, keep=q.limit is None)
        self._index_suspect = False
        matched = [
            e
            for e in entries
            if (q.status is None or e.status in q.status)
            and (q.include_ended or not e.status.ended)
            and (q.agent_id is None or e.agent_id == q.agent_id)
            and (q.workspace_id is None or e.workspace_id == q.workspace_id)
        ]
        if q.limit is None:
            page = sorted(matched)[q.offset :]  # entries sort by (created_at, id)
        else:
            page = heapq.nsmallest(q.offset + q.limit, matched)[q.offset :]
        memo: dict[str, str] = {}
        sessions = []
        for entry in page:
            session = fresh.get(entry.session_id) or self._materialise(entry, memo, problems)
            if session is not None:
                sessions.append(session)
        if self._index_suspect:
            # A row that fits no record was written by hand: let the next list rebuild.
            with contextlib.suppress(OSError):
                os.unlink(self.index_path)
        moved = {p.quarantined_to for p in problems}
        problems.extend(p for p in self._quarantined() if p.quarantined_to not in moved)
        return Listing(sessions, problems, len(matched))

    def _materialise(
        self, entry: idx.Entry, memo: dict[str, str], problems: _Problems
    ) -> Session | None:
        """Decode an indexed record, or read its file if the index cannot say."""
        if entry.row is not None:
            try:
                return idx.decode_row(entry.row, entry.session_id, memo)
            except ValueError:
                self._index_suspect = True
        path = self.path_for(entry.session_id)
        try:
            return self._read(path, entry.session_id)[0]
        except FileNotFoundError:
            return None
        except _Bad as bad:
            problems.append(self._problem(path, entry.session_id, bad))
            return None

    def _scan(
        self, problems: _Problems, *, keep: bool = False
    ) -> tuple[_Entries, dict[str, Session]]:
        """Stat every record file; take unchanged ones from the index, read the others.

        Returns every usable record's index entry and the records read from their
        files in this call: all of them with ``keep``, else those the index cannot
        hold. Rewrites the index if anything changed (and ``.amux/`` exists: a
        read-only command in a tree without a store creates nothing).
        """
        if not self._check_real_dir(self.amux_dir) or not self._check_real_dir(self.sessions_dir):
            return [], {}
        records: list[tuple[str, idx.Stamp]] = []
        odd: list[tuple[Path, str | None, str, int]] = []  # quarantined once the scan ends
        with os.scandir(self.sessions_dir) as scan:
            for dir_entry in scan:
                name = dir_entry.name
                if not (name.startswith(RECORD_PREFIX) and name.endswith(RECORD_SUFFIX)):
                    continue  # temp files, editor backups, anything not ours
                session_id = name[len(RECORD_PREFIX) : -len(RECORD_SUFFIX)]
                if not is_valid_id(session_id):
                    odd.append((Path(dir_entry.path), None, "file name holds no valid id", 0))
                    continue
                try:
                    st = dir_entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                except OSError as err:
                    why = f"cannot stat it: {err.strerror}"
                    problems.append(Problem(dir_entry.path, why, session_id))
                    continue
                if not stat.S_ISREG(st.st_mode):
                    # Never opened: a device may act on open, a socket cannot be opened.
                    odd.append(
                        (Path(dir_entry.path), session_id, _not_regular(st.st_mode), st.st_ino)
                    )
                    continue
                records.append(
                    (session_id, (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size))
                )
        problems.extend(self._quarantine(*args) for args in odd)
        # An index many times the records' size is not ours to read into memory.
        old = self._load_index(2**20 + sum(8 * stamp[3] + 256 for _, stamp in records))
        entries: _Entries = []
        fresh: dict[str, Session] = {}
        changed = False
        for session_id, stamp in records:
            cached = old.get(session_id)
            if cached is not None and cached.stamp == stamp:
                entries.append(cached)
                continue
            changed = True
            entry = self._read_entry(self.path_for(session_id), session_id, stamp, problems)
            if entry is not None:
                entries.append(entry[0])
                if keep or entry[0].row is None:
                    fresh[session_id] = entry[1]
        if changed or len(entries) != len(old):
            self._save_index(entries, old)
        return entries, fresh

    def _read_entry(
        self, path: Path, session_id: str, seen: idx.Stamp, problems: _Problems
    ) -> tuple[idx.Entry, Session] | None:
        started = time.time_ns()
        try:
            session, stamp = self._read(path, session_id)
        except FileNotFoundError:
            return None
        except _Bad as bad:
            problems.append(self._problem(path, session_id, bad))
            return None
        # A file changed within a timestamp tick of this read could change again
        # without changing its stamp: such an entry is kept out of the index.
        trusted = started - max(stamp[1], stamp[2]) > RACY_WINDOW_NS
        stamp = seen if stamp == seen else stamp  # one tuple, not two, per record
        row = idx.encode_row(session) if trusted else None
        entry = idx.Entry.of(session, stamp if trusted else (-1, -1, -1, -1), row)
        return entry, session

    def _load_index(self, max_size: int) -> dict[str, idx.Entry]:
        try:
            st = os.lstat(self.index_path)
        except OSError:
            return {}
        if st.st_size > max_size:
            return {}
        stamp = idx.stamp_of(st)
        if stamp != self._entries_stamp:
            try:
                self._entries = idx.load(self.index_path)
            except idx.BadIndex:
                self._entries = {}
            self._entries_stamp = stamp
        return self._entries

    def _save_index(self, entries: _Entries, old: dict[str, idx.Entry]) -> None:
        kept = [e for e in entries if e.stamp[0] >= 0]
        if {e.session_id: e.stamp for e in kept} == {sid: e.stamp for sid, e in old.items()}:
            return  # what changed is not trusted yet: the index would say the same
        try:
            idx.write(self.index_path, kept)
            st = os.lstat(self.index_path)
        except OSError:
            return  # someone else's store, a read-only disk: list without an index
        self._entries = {e.session_id: e for e in kept}
        self._entries_stamp = idx.stamp_of(st)

    # --- quarantine ----------------------------------------------------------------

    def _quarantine(self, path: Path, session_id: str | None, why: str, inode: int = 0) -> Problem:
        """Move a hostile file aside so it can be inspected and never breaks a listing.

        Under the record's lock, and only if the file is still the one judged bad
        (``inode``, when known): a writer may have replaced it in the meantime.
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
                if inode and st.st_ino != inode:
                    # Replaced by a writer since we read it; the next read decides.
                    return Problem(str(path), "changed while being read", session_id)
                stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
                # The inode alone may repeat within a second (ext4 reuses them at once).
                unique = f"{st.st_ino}-{os.urandom(3).hex()}"
                target = self.quarantine_dir / f"{path.name}.{stamp}.{unique}{QUARANTINE_SUFFIX}"
                os.replace(path, target)
                atomic.fsync_dir(self.sessions_dir)
                moved_to = str(target)
        except (OSError, exc.AmuxError):
            pass  # reported as bad but left in place; list still goes on
        shown = None if moved_to is None else _shown(moved_to)
        return Problem(_shown(str(path)), why, session_id, shown)

    def _quarantined(self) -> _Problems:
        """Return one problem per file in ``.amux/quarantine/``, oldest first.

        The id in the name keeps the session it names protected until a person
        deletes the copy (``rm --force ID`` does).
        """
        try:
            if not self._check_real_dir(self.quarantine_dir):
                return []
            names = sorted(os.listdir(self.quarantine_dir))
        except (OSError, exc.UnsafePath):
            return []
        problems = []
        for name in names:
            if not (name.startswith(RECORD_PREFIX) and name.endswith(QUARANTINE_SUFFIX)):
                continue
            cut = name.find(RECORD_SUFFIX + ".")
            session_id = name[len(RECORD_PREFIX) : cut] if cut > 0 else ""
            problems.append(
                Problem(
                    _shown(str(self.sessions_dir / name[: cut + len(RECORD_SUFFIX)])),
                    "in quarantine (not YAML, or hostile); inspect it, then delete it",
                    session_id if is_valid_id(session_id) else None,
                    _shown(str(self.quarantine_dir / name)),
                )
            )
        return problems

    # --- writing -------------------------------------------------------------------

    def create(self, session: Session) -> Session:
        """Write a new record with revision 1.

        Raises
        ------
        RecordTooLarge
            The record would leave too little room to grow under the size cap.
        StoreError
            If a record with this id exists already.
        """
        path = self.path_for(session.id)
        _check_new_size(session)
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
            _unlink(path, session_id)
            return current

    def discard(self, session_id: str) -> None:
        """Remove a bad record of ``session_id``: its file and its quarantined copies.

        For ``rm --force`` of a record that cannot be read; afterwards nothing
        protects the id any more.

        Raises
        ------
        SessionNotFound
            There is no such file nor copy.
        """
        path = self.path_for(session_id)
        with self.lock(session_id):
            removed = False
            with contextlib.suppress(exc.SessionNotFound):
                _unlink(path, session_id)
                removed = True
            for problem in self._quarantined():
                if problem.session_id == session_id and problem.quarantined_to:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(problem.quarantined_to)
                        removed = True
            if not removed:
                raise exc.SessionNotFound(session_id)

    def _write(self, path: Path, session: Session) -> Session:
        # Masking here means no caller can put a raw secret on disk, by mistake or not.
        session = session.evolve(
            environment=mask_environment(session.environment), updated_at=utcnow()
        )
        data = codec.encode(session.to_dict())
        if len(data) > codec.MAX_RECORD_BYTES:
            raise exc.StoreError(
                f"session {session.id} would be {len(data)} bytes, over the "
                f"{codec.MAX_RECORD_BYTES} byte limit; the previous record is unchanged"
            )
        try:
            atomic.write_durable(path, data)
        except atomic.NotDurableError as err:
            raise exc.StoreError(
                f"session {session.id} was written, but flushing its directory failed "
                f"({err.strerror or err}); it may not survive a crash"
            ) from None
        except OSError as err:
            raise exc.StoreError(
                f"could not write session {session.id}: {err.strerror or err}; "
                "the previous record is unchanged"
            ) from None
        return session

    # --- references ----------------------------------------------------------------

    def resolve(self, ref: str) -> Session:
        """Find one record by full id, exact name, or unique id prefix.

        An exact id wins. Otherwise names and id prefixes are looked up together: a
        ref that is one session's name and another's id prefix is ambiguous. Of
        several sessions with one name, the live one (not ended) is meant. Records
        that cannot be read count as id-prefix candidates.

        Raises
        ------
        InvalidSessionId
            ``ref`` could be neither an id, a prefix nor a name.
        CorruptRecord
            ``ref`` means a record that cannot be read.
        AmbiguousReference
            Several records match.
        SessionNotFound
            None does.
        """
        if NAME_RE.fullmatch(ref) is None:
            raise exc.InvalidSessionId(ref)
        if is_valid_id(ref):
            with contextlib.suppress(exc.SessionNotFound):
                return self.get(ref)
        entries, problem_ids = self._catalogue()
        named = [e for e in entries if e.name == ref]
        if len(named) > 1:
            # Names are unique among live sessions; ended ones may repeat a name.
            named = [e for e in named if not e.status.ended] or named
        prefixed = {e.session_id for e in entries if e.session_id.startswith(ref)}
        prefixed |= {sid for sid in problem_ids if sid.startswith(ref)}
        others = prefixed - {e.session_id for e in named}
        if named and not others and len(named) == 1:
            return self.get(named[0].session_id)
        if named or len(others) > 1:
            raise exc.AmbiguousReference(ref, [e.session_id for e in named] + sorted(others))
        if others:
            (only,) = others
            return self.get(only)
        raise exc.SessionNotFound(ref)


def _check_new_size(session: Session) -> None:
    """Refuse a new record too large to grow (runs, error text) under the size cap."""
    data = session.to_dict()
    size = len(codec.encode(data))
    if size <= codec.MAX_NEW_RECORD_BYTES:
        return
    largest = max(data, key=lambda key: len(str(data[key])))
    raise exc.RecordTooLarge(
        size, codec.MAX_NEW_RECORD_BYTES, _SHORTEN.get(largest, f"the {largest} field")
    )


def _shown(text: str) -> str:
    """Return ``text`` with anything a terminal would act on escaped (it gets printed)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def _not_regular(mode: int) -> str:
    kind = (
        "a symbolic link"
        if stat.S_ISLNK(mode)
        else "a FIFO"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a directory"
        if stat.S_ISDIR(mode)
        else "a device"
    )
    return f"record is {kind}, not a regular file"


def _unlink(path: Path, session_id: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        raise exc.SessionNotFound(session_id) from None
    except OSError as err:
        raise exc.StoreError(f"could not remove {path}: {err.strerror or err}") from None
    with contextlib.suppress(OSError):
        atomic.fsync_dir(path.parent)  # the unlink happened; durability only


def _read_store_id(amux_dir: Path) -> tuple[str, str | None] | None:
    """Return ``(id, the root it was made for)`` from a store's id file, if it has one."""
    try:
        fd = os.open(amux_dir / STORE_ID_FILE, _OPEN_FLAGS)
    except OSError:
        return None
    try:
        raw = os.read(fd, 8192)
    finally:
        os.close(fd)
    lines = raw.decode("utf-8", "surrogateescape").split("\n")
    ident = lines[0].strip()
    if not is_valid_id(ident):
        raise exc.StoreError(
            f"{amux_dir / STORE_ID_FILE} does not hold a store id; "
            "restore it or remove it (sessions tagged with the old id become foreign)"
        )
    made_for = lines[1] if len(lines) > 1 and lines[1].startswith("/") else None
    return ident, made_for


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


@contextlib.contextmanager
def without_gc() -> Iterator[None]:
    """Pause the cycle collector while many records are built.

    Records, entries and index rows hold no reference cycles: reference counting frees
    them all, and the collector's passes over a heap growing by 100,000 records cost a
    listing about 40% of its time.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
