"""A persistent, stat-validated cache of decoded records: ``.amux/index``.

``list`` at 100,000 records would read and parse 100,000 files; with the index it reads
one file and stats the others. The index is never the truth: an entry is used only while
its record file still has the ``(inode, mtime_ns, ctime_ns, size)`` it had when it was
read, and only if it was read well after it last changed (a same-tick rewrite cannot
hide behind an unchanged stamp). Anything else is read from the file again.

The format is plain text and JSON, so a hostile index can do no more than be wrong
about types, which :func:`decode_row` checks as strictly as the record reader:

    amux-index/<version> <layout crc> <keys bytes> <rows bytes> <crc32 of the rest>\\n
    <keys: one JSON array of [id, ino, mtime_ns, ctime_ns, size, created_at, status,
     agent_id, workspace_id, name, row offset, row length]>
    <rows: one JSON array per record, fields in Session order; length 0 = not stored>

A missing, truncated, corrupt or other-version index is simply ignored (and rebuilt).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import re
import stat
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from amux_tmux.model import _CHECKS, Activity, Run, Session, Status
from amux_tmux.store import atomic

VERSION = 1
MAGIC = b"amux-index/"
#: Session's fields in order: a new field changes the layout and retires old indexes.
_FIELDS = tuple(f.name for f in dataclasses.fields(Session))
_LAYOUT = zlib.crc32(",".join(_FIELDS).encode())
_KEY_WIDTH = 12
_HEADER_MAX = 128
_ROWS_PER_BLOCK = 2048
_CANON_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z\Z")
_STATUSES = {s.value: s for s in Status}
# Where each field sits in a row (the order of Session's fields).
_ID, _STATUS, _CREATED, _UPDATED, _CTIME, _COMMAND, _ENV, _ACTIVITY, _RUNS, _EXTRA = (
    _FIELDS.index(name)
    for name in (
        "id",
        "status",
        "created_at",
        "updated_at",
        "pid_create_time",
        "command",
        "environment",
        "activity",
        "runs",
        "extra",
    )
)
_REVISION, _SCHEMA = _FIELDS.index("revision"), _FIELDS.index("schema")
_TEXTS = tuple(
    _FIELDS.index(n) for n in ("name", "tmux_session", "tmux_session_id", "pane_id", "error")
)
_SHARED_TEXTS = tuple(_FIELDS.index(n) for n in ("agent_id", "workspace_id", "tmux_socket", "cwd"))
_INTS = (_FIELDS.index("pid"), _FIELDS.index("exit_code"))
_OPTIONAL_TIMES = tuple(_FIELDS.index(n) for n in ("started_at", "stopped_at", "activity_at"))
_FAST = {
    *(_FIELDS[i] for i in (*_TEXTS, *_SHARED_TEXTS, *_INTS, *_OPTIONAL_TIMES)),
    *("id", "status", "created_at", "updated_at", "pid_create_time", "command"),
    *("environment", "activity", "runs", "revision", "schema", "extra"),
}
# Fields checked above by hand for speed; any other goes through the record reader's check.
_OTHERS = tuple((i, name, _CHECKS[name]) for i, name in enumerate(_FIELDS) if name not in _FAST)
_ACTIVITIES = {a.value: a for a in Activity}
_decode = json.JSONDecoder().decode

#: ``(st_ino, st_mtime_ns, st_ctime_ns, st_size)`` of a record file.
Stamp = tuple[int, int, int, int]


def stamp_of(st: os.stat_result) -> Stamp:
    """Return the validation stamp of a record file's stat."""
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)


class Entry(NamedTuple):
    """What the index knows of one record: enough to filter and sort without decoding.

    A NamedTuple rather than a dataclass: a list builds 100,000 of them, and tuples
    build several times faster. Entries order as records list, by ``(created_at, id)``.
    """

    created_at: str
    session_id: str
    stamp: Stamp
    status: Status
    agent_id: str | None
    workspace_id: str | None
    name: str | None
    #: The record as a JSON row (:func:`encode_row`), or ``None``: read the file.
    row: bytes | memoryview | None

    @classmethod
    def of(cls, session: Session, stamp: Stamp, row: bytes | memoryview | None) -> Entry:
        """Return the entry of a decoded record."""
        return cls(
            session.created_at,
            session.id,
            stamp,
            session.status,
            session.agent_id,
            session.workspace_id,
            session.name,
            row,
        )


class BadIndex(ValueError):
    """The index cannot be used; it is ignored and rebuilt."""


def load(path: Path) -> dict[str, Entry]:
    """Read the index at ``path``.

    Raises
    ------
    BadIndex
        Missing, unreadable, not a regular file, truncated, corrupt, or of another
        version or record layout.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as err:
        raise BadIndex(f"cannot open: {err.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BadIndex("not a regular file")
        data = _read_exactly(fd, st.st_size)
    finally:
        os.close(fd)
    return parse(data)


def _read_exactly(fd: int, size: int) -> bytes:
    chunks = []
    while size > 0:
        chunk = os.read(fd, size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def parse(data: bytes) -> dict[str, Entry]:
    """Parse index bytes (see the module docstring); raise :class:`BadIndex`."""
    end = data.find(b"\n", 0, _HEADER_MAX)
    if not data.startswith(MAGIC) or end < 0:
        raise BadIndex("no index header")
    try:
        version, layout, keys_len, rows_len, crc = (
            int(part) for part in data[len(MAGIC) : end].split(b" ")
        )
    except ValueError:
        raise BadIndex("bad index header") from None
    if version != VERSION or layout != _LAYOUT:
        raise BadIndex("index of another version")
    body = memoryview(data)[end + 1 :]
    if keys_len < 0 or rows_len < 0 or len(body) != keys_len + rows_len:
        raise BadIndex("index is truncated")
    if zlib.crc32(body) != crc:
        raise BadIndex("index checksum does not match")
    rows = body[keys_len:]
    try:
        keys = json.loads(bytes(body[:keys_len]))
        if type(keys) is not list:
            raise BadIndex("index keys are not a list")
        entries = {}
        for key in keys:
            entry = _entry(key, rows)
            entries[entry.session_id] = entry
    except (ValueError, TypeError, KeyError, RecursionError):
        raise BadIndex("index keys do not fit the layout") from None
    return entries


def _entry(key: Any, rows: memoryview) -> Entry:
    # Only types matter here: an entry is used only under the id of a file that exists
    # with this stamp, and its row is checked in full when it is decoded.
    if type(key) is not list or len(key) != _KEY_WIDTH:
        raise BadIndex("bad index key")
    sid, ino, mtime, ctime, size, created, status, agent, workspace, name, offset, length = key
    if not (
        type(sid) is str
        and type(ino) is int
        and type(mtime) is int
        and type(ctime) is int
        and type(size) is int
        and type(created) is str
        and (agent is None or type(agent) is str)
        and (workspace is None or type(workspace) is str)
        and (name is None or type(name) is str)
        and type(offset) is int
        and type(length) is int
        and offset >= 0
        and length >= 0
        and offset + length <= len(rows)
    ):
        raise BadIndex("bad index key")
    row = rows[offset : offset + length] if length else None
    return Entry(
        created, sid, (ino, mtime, ctime, size), _STATUSES[status], agent, workspace, name, row
    )


def dump(entries: Iterable[Entry]) -> Iterator[bytes]:
    """Serialise ``entries`` (their rows included) into index bytes, in blocks.

    At 100,000 records the index is tens of megabytes: it is produced a block at a
    time instead of as one more copy of every row.
    """
    keys: list[list[object]] = []
    parts: list[bytes] = []  # the keys array, a slice at a time: one list per entry is big
    rows: list[bytes | memoryview] = []
    offset = 0
    for e in entries:
        length = 0 if e.row is None else len(e.row)
        keys.append(
            [
                e.session_id,
                *e.stamp,
                e.created_at,
                e.status.value,
                e.agent_id,
                e.workspace_id,
                e.name,
                offset,
                length,
            ]
        )
        if len(keys) == _ROWS_PER_BLOCK:
            parts.append(json.dumps(keys, separators=(",", ":"))[1:-1].encode())
            keys.clear()
        if e.row is not None and length:
            rows.append(e.row)
            offset += length + 1
    if keys:
        parts.append(json.dumps(keys, separators=(",", ":"))[1:-1].encode())
    keys_json = b"[" + b",".join(parts) + b"]"
    del parts
    crc = zlib.crc32(keys_json)
    for row in rows:
        crc = zlib.crc32(b"\n", zlib.crc32(row, crc))
    yield MAGIC + f"{VERSION} {_LAYOUT} {len(keys_json)} {offset} {crc}\n".encode() + keys_json
    del keys_json
    for start in range(0, len(rows), _ROWS_PER_BLOCK):
        yield b"\n".join(rows[start : start + _ROWS_PER_BLOCK]) + b"\n"


def write(path: Path, entries: Iterable[Entry]) -> None:
    """Replace the index atomically (not durably: a lost index is only rebuilt)."""
    atomic.write_durable(path, dump(entries), sync=False)


# --- rows ----------------------------------------------------------------------------


def encode_row(session: Session) -> bytes | None:
    """Return ``session`` as one JSON line, or ``None`` if JSON cannot hold it exactly.

    Hand-added keys may hold dates, binary or non-text keys; such a record is not
    stored and is read from its file each time.
    """
    if session.extra and not _json_exact(session.extra):
        return None
    row = [getattr(session, name) for name in _FIELDS]
    row[_FIELDS.index("runs")] = [
        [r.started_at, r.stopped_at, r.status.value, r.exit_code, r.error] for r in session.runs
    ]
    row[_FIELDS.index("extra")] = dict(session.extra) or None
    try:
        return json.dumps(row, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError):
        return None


def _json_exact(value: object) -> bool:
    """Whether ``value`` survives a JSON round trip unchanged (types included)."""
    if value is None or type(value) in (str, int, bool):
        return True
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is list:
        return all(_json_exact(item) for item in value)
    if type(value) is dict:
        return all(type(k) is str and _json_exact(v) for k, v in value.items())
    return False


def decode_row(raw: bytes | memoryview, session_id: str, memo: dict[str, str]) -> Session:
    """Rebuild record ``session_id`` from its row, checking every type as the reader would.

    ``memo`` shares equal strings between records (agent, cwd, command words...), which
    keeps a listing of 100,000 records small.

    Raises
    ------
    ValueError
        The row is not what :func:`encode_row` wrote for this record.
    """
    try:
        # Rows are ASCII (ensure_ascii): no encoding to detect, no copy to bytes.
        return _decode_row(_decode(str(raw, "ascii")), session_id, memo)
    except (KeyError, TypeError, RecursionError):
        raise ValueError("bad index row") from None


def _decode_row(row: Any, session_id: str, memo: dict[str, str]) -> Session:
    if type(row) is not list or len(row) != len(_FIELDS) or row[_ID] != session_id:
        raise ValueError("bad index row")
    share = memo.setdefault
    for i in _TEXTS:
        if row[i] is not None and type(row[i]) is not str:
            raise ValueError("bad index row")
    for i in _SHARED_TEXTS:
        if row[i] is not None:
            if type(row[i]) is not str:
                raise ValueError("bad index row")
            row[i] = share(row[i], row[i])
    for i in _INTS:
        if row[i] is not None and type(row[i]) is not int:
            raise ValueError("bad index row")
    if type(row[_REVISION]) is not int or type(row[_SCHEMA]) is not int:
        raise ValueError("bad index row")
    if row[_CTIME] is not None and type(row[_CTIME]) is not float:
        raise ValueError("bad index row")
    if not (_time_ok(row[_CREATED]) and _time_ok(row[_UPDATED])):
        raise ValueError("bad index row")
    for i in _OPTIONAL_TIMES:
        if row[i] is not None and not _time_ok(row[i]):
            raise ValueError("bad index row")
    row[_STATUS] = _STATUSES[row[_STATUS]]
    if row[_ACTIVITY] is not None:
        row[_ACTIVITY] = _ACTIVITIES[row[_ACTIVITY]]
    command, environment, runs, extra = row[_COMMAND], row[_ENV], row[_RUNS], row[_EXTRA]
    if type(command) is not list or type(environment) is not dict or type(runs) is not list:
        raise ValueError("bad index row")
    if extra is not None and type(extra) is not dict:
        raise ValueError("bad index row")
    for word in command:
        if type(word) is not str:
            raise ValueError("bad index row")
    for value in environment.values():
        if type(value) is not str:
            raise ValueError("bad index row")
    row[_COMMAND] = tuple([share(word, word) for word in command])
    row[_ENV] = {share(k, k): share(v, v) for k, v in environment.items()}
    row[_RUNS] = tuple([_run(r) for r in runs])
    row[_EXTRA] = extra or {}
    for i, name, check in _OTHERS:
        row[i] = check(name, row[i])
    return Session(*row)


def _run(raw: Any) -> Run:
    if type(raw) is not list or len(raw) != 5:
        raise ValueError("bad index row")
    started_at, stopped_at, status, exit_code, error = raw
    if not _time_ok(started_at, optional=True) or not _time_ok(stopped_at, optional=True):
        raise ValueError("bad index row")
    return Run(started_at, stopped_at, _STATUSES[status], _opt_int(exit_code), _opt_text(error))


def _time_ok(value: object, *, optional: bool = False) -> bool:
    if value is None:
        return optional
    if type(value) is not str or _CANON_TIME.match(value) is None:
        return False
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _opt_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError("bad index row")


def _opt_int(value: object) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise ValueError("bad index row")
