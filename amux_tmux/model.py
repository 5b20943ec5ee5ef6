"""The session record: dataclass, status machine, ids and timestamps.

This module knows plain Python data only; how a record is serialised lives in
:mod:`amux_tmux.store.codec` and how it is run lives in :mod:`amux_tmux.tmux`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from amux_tmux import exc

#: 2: ``masked_env``/``masked_args`` say what was masked (1: a "***" value was a mask).
SCHEMA_VERSION = 2
SESSION_PREFIX = "amux-"
ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{2,63}")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
GENERATED_ID_BYTES = 5  # 10 hex digits: short to type, 2**40 to collide


class Status(enum.StrEnum):
    """Lifecycle status of a session record."""

    CREATED = "created"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    COMPLETED = "completed"
    FAILED = "failed"
    ORPHANED = "orphaned"

    @property
    def ended(self) -> bool:
        """Whether the session can never run again (hidden by ``list`` without ``--all``)."""
        return self in ENDED

    def __str__(self) -> str:
        return self.value


ENDED = frozenset({Status.STOPPED, Status.COMPLETED, Status.FAILED})


class Activity(enum.StrEnum):
    """What a live agent is doing: derived from its pane and its hooks, never a status."""

    WORKING = "working"
    WAITING = "waiting"
    IDLE = "idle"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value


#: The one table of allowed status changes. Ended states have no way out.
TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    Status.CREATED: frozenset({Status.STARTING, Status.STOPPING, Status.FAILED, Status.STOPPED}),
    Status.STARTING: frozenset(
        {
            Status.RUNNING,
            Status.STOPPING,
            Status.FAILED,
            Status.STOPPED,
            Status.COMPLETED,
            Status.ORPHANED,
        }
    ),
    Status.RUNNING: frozenset(
        {Status.STOPPING, Status.STOPPED, Status.COMPLETED, Status.FAILED, Status.ORPHANED}
    ),
    Status.STOPPING: frozenset({Status.STOPPED, Status.COMPLETED, Status.FAILED, Status.ORPHANED}),
    # Back to running when its session turns up again (a socket file restored).
    Status.ORPHANED: frozenset(
        {Status.RUNNING, Status.STOPPING, Status.STOPPED, Status.COMPLETED, Status.FAILED}
    ),
    Status.STOPPED: frozenset(),
    Status.COMPLETED: frozenset(),
    Status.FAILED: frozenset(),
}


def can_transition(current: Status, target: Status) -> bool:
    """Return whether ``current -> target`` is an allowed status change."""
    return target in TRANSITIONS[current]


# --- ids and names ---------------------------------------------------------------------


def validate_id(value: object) -> str:
    """Return ``value`` if it is a well-formed session id, else raise.

    Raises
    ------
    InvalidSessionId
        Before any file or tmux call can see the value.
    """
    if not isinstance(value, str) or ID_RE.fullmatch(value) is None:
        raise exc.InvalidSessionId(str(value))
    return value


def is_valid_id(value: object) -> bool:
    """Return whether ``value`` is a well-formed session id."""
    return isinstance(value, str) and ID_RE.fullmatch(value) is not None


def validate_name(value: str) -> str:
    """Return ``value`` if it is an acceptable session name, else raise ``UsageError``."""
    if NAME_RE.fullmatch(value) is None:
        raise exc.UsageError(
            f"invalid session name {value[:40]!r}: use 1-64 of A-Z a-z 0-9 . _ -, "
            "starting with a letter or digit"
        )
    return value


#: Longest ``--agent``/``--workspace`` label accepted; labels are for tables, not payloads.
MAX_LABEL = 128
# C0, DEL, C1, line/paragraph separators and the bidi controls that reorder what a
# terminal shows (a label "abc<RLO>gpj.exe" would print as "abcexe.jpg").
_LABEL_FORBIDDEN = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def validate_label(kind: str, value: str) -> str:
    """Return ``value`` if it is usable as an agent or workspace label, else raise.

    Parameters
    ----------
    kind : str
        What the label is (``"agent"``, ``"workspace"``), for the message.
    value : str
        The label as given on the command line.

    Raises
    ------
    UsageError
        Empty, longer than :data:`MAX_LABEL` characters, or holding a control,
        line-break or bidi character (exit 2, naming the limit).
    """
    if not value:
        raise exc.UsageError(f"{kind} label is empty")
    if len(value) > MAX_LABEL:
        raise exc.UsageError(
            f"{kind} label is {len(value)} characters long; the limit is {MAX_LABEL}: shorten it"
        )
    bad = _LABEL_FORBIDDEN.search(value)
    if bad is not None:
        raise exc.UsageError(
            f"{kind} label contains the control character U+{ord(bad.group()):04X}; "
            "use printable text on one line"
        )
    return value


def generate_id(exists: Callable[[str], bool], attempts: int = 20) -> str:
    """Return a fresh random id for which ``exists(id)`` is false.

    Ids are all-hex, so one that happens to be all digits is as valid as any other.
    """
    for _ in range(attempts):
        candidate = os.urandom(GENERATED_ID_BYTES).hex()
        if not exists(candidate):
            return candidate
    raise exc.StoreError(f"could not find a free session id in {attempts} attempts")


def tmux_session_name(session_id: str) -> str:
    """Return the tmux session name amux uses for ``session_id``."""
    return SESSION_PREFIX + session_id


# --- time ------------------------------------------------------------------------------


def utcnow() -> str:
    """Return the current UTC time as a fixed-width ISO-8601 string (sorts as text)."""
    return format_time(dt.datetime.now(dt.UTC))


def format_time(moment: dt.datetime) -> str:
    """Format an aware datetime as the record's UTC ISO-8601 text.

    Raises
    ------
    OverflowError
        When the moment in UTC falls outside years 1-9999.
    """
    utc = moment.astimezone(dt.UTC).replace(tzinfo=None)
    # isoformat pads the year to four digits; strftime("%Y") does not on glibc.
    return utc.isoformat(timespec="microseconds") + "Z"


def parse_time(value: str) -> dt.datetime:
    """Parse a timestamp (ISO-8601; date-only or naive means UTC) to an aware UTC datetime.

    Raises
    ------
    ValueError
        Not a time, or one that cannot be expressed in UTC (``0001-01-01T00:00+14:00``).
    """
    parsed = dt.datetime.fromisoformat(value.strip())
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.UTC)
    try:
        return parsed.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError(f"time {value[:40]!r} is out of range in UTC") from None


def age_seconds(value: str, now: dt.datetime) -> float:
    """Return how many seconds before ``now`` the timestamp ``value`` lies."""
    return (now - parse_time(value)).total_seconds()


# --- live tmux state (plain data; tmux.py fills it, reconcile.py judges it) -------------


@dataclasses.dataclass(frozen=True, slots=True)
class LivePane:
    """The first pane of a tmux session, as one listing saw it."""

    session_id: str
    session_name: str
    session_created: int
    #: ``@amux_id``: the record id this session claims to belong to.
    owner_id: str | None
    orphan_tag: bool
    pane_id: str
    pane_pid: int | None
    pane_dead: bool
    pane_dead_status: int | None
    #: Set when a signal ended the agent (tmux >= 3.3; else never).
    pane_dead_signal: int | None = None
    #: When tmux saw the pane die (epoch seconds), if it says.
    pane_dead_time: int | None = None
    #: ``@amux_store``: the id of the store that started this session.
    store_id: str | None = None
    #: When the window last had output (epoch seconds), if tmux says.
    activity_at: int | None = None
    #: The pid of the tmux server that listed it: ``$N`` ids mean nothing on another.
    server_pid: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ProcessFacts:
    """What the system says about a recorded agent pid right now."""

    #: When the process now holding the pid started; ``None``: no such process.
    create_time: float | None
    #: It has exited but nobody reaped it yet (it is not running).
    zombie: bool = False


# --- the record ------------------------------------------------------------------------

#: How many earlier runs of a restarted session the record keeps.
MAX_RUNS = 10


@dataclasses.dataclass(frozen=True, slots=True)
class Run:
    """How one earlier run of a session ended (``restart`` keeps a short history)."""

    started_at: str | None
    stopped_at: str | None
    status: Status
    exit_code: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return plain data in field order."""
        return {
            "started_at": self.started_at,
            "stopped_at": self.stopped_at,
            "status": self.status.value,
            "exit_code": self.exit_code,
            "error": self.error,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Session:
    """One agent session, as stored in ``.amux/sessions/session-{id}.yaml``.

    Instances are immutable; use :meth:`evolve` or :meth:`transition` for a changed copy.
    ``environment`` holds masked values only (secrets are ``"***"``).
    """

    id: str
    status: Status
    created_at: str
    updated_at: str
    name: str | None = None
    agent_id: str | None = None
    #: The profile ``start`` ran, and how many of ``command``'s last arguments were
    #: given after ``--`` (what ``restart --resume`` appends to the profile's resume argv).
    profile: str | None = None
    profile_args: int = 0
    workspace_id: str | None = None
    tmux_socket: str | None = None
    tmux_session: str | None = None
    tmux_session_id: str | None = None
    pane_id: str | None = None
    pid: int | None = None
    pid_create_time: float | None = None
    command: tuple[str, ...] = ()
    cwd: str | None = None
    environment: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: Names in ``environment`` and positions in ``command`` whose values were masked:
    #: ``restart`` takes the former again from the caller's environment, and refuses
    #: the latter.
    masked_env: tuple[str, ...] = ()
    masked_args: tuple[int, ...] = ()
    exit_code: int | None = None
    error: str | None = None
    started_at: str | None = None
    stopped_at: str | None = None
    #: What the agent last said it is doing (``mark``), and when.
    activity: Activity | None = None
    activity_at: str | None = None
    runs: tuple[Run, ...] = ()
    revision: int = 0
    schema: int = SCHEMA_VERSION
    #: Keys a person added by hand, kept verbatim on every rewrite.
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def evolve(self, **changes: Any) -> Session:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def marked(self, state: Activity) -> Session:
        """Return a copy saying the agent reported ``state`` now (its hooks' ``mark``)."""
        return dataclasses.replace(self, activity=state, activity_at=utcnow())

    def transition(self, target: Status, **changes: Any) -> Session:
        """Return a copy moved to ``target``; raise ``InvalidTransition`` if not allowed."""
        if target is not self.status and not can_transition(self.status, target):
            raise exc.InvalidTransition(self.id, self.status.value, target.value)
        return dataclasses.replace(self, status=target, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Return the record as plain data in schema field order, hand-added keys last."""
        # Spelled out, not a loop over the fields: `ls --json` calls this for every
        # record, and the loop cost a listing of 100,000 records half its time.
        activity = self.activity
        data: dict[str, Any] = {
            "id": self.id,
            "status": self.status.value,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "name": self.name,
            "agent_id": self.agent_id,
            "profile": self.profile,
            "profile_args": self.profile_args,
            "workspace_id": self.workspace_id,
            "tmux_socket": self.tmux_socket,
            "tmux_session": self.tmux_session,
            "tmux_session_id": self.tmux_session_id,
            "pane_id": self.pane_id,
            "pid": self.pid,
            "pid_create_time": self.pid_create_time,
            "command": list(self.command),
            "cwd": self.cwd,
            "environment": dict(self.environment),
            "masked_env": list(self.masked_env),
            "masked_args": list(self.masked_args),
            "exit_code": self.exit_code,
            "error": self.error,
            "started_at": self.started_at,
            "stopped_at": self.stopped_at,
            "activity": None if activity is None else activity.value,
            "activity_at": self.activity_at,
            "runs": [run.to_dict() for run in self.runs] if self.runs else [],
            "revision": self.revision,
            "schema": self.schema,
        }
        for key, value in self.extra.items():
            data.setdefault(key, value)
        return data

    @classmethod
    def from_dict(cls, data: object) -> Session:
        """Build a record from untrusted plain data, checking every type.

        What a person would write by hand is accepted and normalised in memory (the
        file is rewritten only by the next change): ``status: Running``, ``pid: '123'``,
        ``name: 123``, ``command: sleep 1000``, numbers and booleans as environment
        values, ``environment: null``, date-only or naive times (taken as UTC), and
        keys outside the schema, which are kept in ``extra``.

        Raises
        ------
        ValueError
            With a short reason (and what to write instead), when a value's meaning
            is not clear or anything required is missing.
        """
        if not isinstance(data, dict):
            raise ValueError(f"record is a {type(data).__name__}, not a mapping")
        kwargs: dict[str, Any] = {}
        extra: dict[Any, Any] = {}
        for key, value in data.items():
            check = _CHECKS.get(key)
            if check is None:
                extra[key] = value
            else:
                kwargs[key] = check(key, value)
        if extra:
            kwargs["extra"] = extra
        for required in ("id", "status", "created_at", "updated_at"):
            if kwargs.get(required) is None:
                raise ValueError(f"missing field {required!r}")
        if not is_valid_id(kwargs["id"]):
            raise ValueError(f"invalid id {kwargs['id']!r}")
        # A record that does not say is read by the first schema's rules.
        kwargs.setdefault("schema", 1)
        return cls(**kwargs)


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Session))
#: Keys of a record file that are schema fields (``extra`` holds the others).
_FIELD_SET = frozenset(_FIELD_NAMES) - {"extra"}


# The checks below read what a person may have typed: YAML 1.1 turns bare `1` into an
# int, `yes`/`on`/`true` into booleans and `2026-11-24` into a date. Where the meaning
# is clear the value is coerced; where YAML may have changed it (`1.10` is the float 1.1,
# `yes` the program is True) the message asks for quotes instead of guessing.
_INT_TEXT = re.compile(r"[-+]?[0-9]{1,19}")
# What format_time writes: a time already in this form is kept as it is.
_CANONICAL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z\Z")
_FLOAT_TEXT = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_QUOTE_HINT = "put the value in quotes"


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean (YAML reads bare yes/no/on/off/true/false so)"
    if isinstance(value, float):
        return "a number with a fraction (YAML reads 1.10 as 1.1)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def _opt_str(field: str, value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"{field} must be text, got {_kind(value)}; {_QUOTE_HINT}")


def _req_str(field: str, value: object) -> str:
    text = _opt_str(field, value)
    if text is None:
        raise ValueError(f"{field} must not be empty")
    return text


def _time(field: str, value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and _CANONICAL_TIME.match(value):
        try:
            dt.datetime.fromisoformat(value)  # the day must exist
        except ValueError:
            pass  # and the message below says so
        else:
            return value
    # An unquoted timestamp reaches us as a datetime, a bare 2026-11-24 as a date.
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    elif isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                f"{field} is not a time: {value[:40]!r}; write it like 2026-11-24T10:30:00Z"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
    else:
        raise ValueError(f"{field} must be a time like 2026-11-24T10:30:00Z, got {_kind(value)}")
    try:
        return format_time(moment)
    except OverflowError:
        raise ValueError(f"{field} {str(value)[:40]!r} is out of range in UTC") from None


def _opt_int(field: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
        return int(value)
    raise ValueError(f"{field} must be a whole number, got {_kind(value)}")


def _int(field: str, value: object) -> int:
    result = _opt_int(field, value)
    if result is None:
        raise ValueError(f"{field} must be a whole number")
    return result


def _opt_float(field: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
        value = float(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number):
            return number
    raise ValueError(f"{field} must be a finite number, got {_kind(value)}")


def _word(value: str) -> str:
    # `status: Running` or `" running "` mean what they say.
    return value.strip().lower()


def _status(field: str, value: object) -> Status:
    try:
        return Status(_word(value)) if isinstance(value, str) else Status("")
    except ValueError:
        choices = ", ".join(s.value for s in Status)
        raise ValueError(f"{field} {value!r} is not one of {choices}") from None


def _arg(field: str, index: int, value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"{field} item {index} is {_kind(value)}; {_QUOTE_HINT}")


def _command(field: str, value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        import shlex  # only hand-written records hold a command line

        try:
            return tuple(shlex.split(value))
        except ValueError as err:
            raise ValueError(
                f"{field} cannot be split like a shell line ({err}); write it as a list"
            ) from None
    if isinstance(value, list):
        return tuple(_arg(field, index, part) for index, part in enumerate(value))
    raise ValueError(f"{field} must be a list of arguments, got {_kind(value)}")


def _env_value(field: str, name: str, value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    if value is None:
        raise ValueError(f"{field} {name!r} has no value; write '' for an empty one")
    raise ValueError(f"{field} {name!r} is {_kind(value)}; {_QUOTE_HINT}")


def _environment(field: str, value: object) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, list) and all(isinstance(item, str) and "=" in item for item in value):
        # The docker-compose spelling: [NAME=value, ...].
        return {name: item for name, _, item in (entry.partition("=") for entry in value)}
    if not isinstance(value, dict):
        raise ValueError(f"{field} must map names to values, got {_kind(value)}")
    if all(type(k) is str and type(v) is str for k, v in value.items()):
        return dict(value)
    result: dict[str, str] = {}
    for name, item in value.items():
        if not isinstance(name, str):
            raise ValueError(f"{field} name {name!r} must be text; {_QUOTE_HINT}")
        result[name] = _env_value(field, name, item)
    return result


def _count(field: str, value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ValueError(f"{field} must be a whole number >= 0, got {_kind(value)}")


def _names(field: str, value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise ValueError(f"{field} must be a list of variable names, got {_kind(value)}")


def _positions(field: str, value: object) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, list) and all(
        isinstance(item, int) and not isinstance(item, bool) and item >= 0 for item in value
    ):
        return tuple(value)
    raise ValueError(f"{field} must be a list of argument positions, got {_kind(value)}")


def _activity(field: str, value: object) -> Activity | None:
    if value is None:
        return None
    try:
        return Activity(_word(value)) if isinstance(value, str) else Activity("")
    except ValueError:
        choices = ", ".join(a.value for a in Activity)
        raise ValueError(f"{field} {value!r} is not one of {choices}") from None


def _runs(field: str, value: object) -> tuple[Run, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ValueError(f"{field} must be a list of mappings")
    return tuple(
        Run(
            started_at=_time(f"{field} started_at", item.get("started_at")),
            stopped_at=_time(f"{field} stopped_at", item.get("stopped_at")),
            status=_status(f"{field} status", item.get("status")),
            exit_code=_opt_int(f"{field} exit_code", item.get("exit_code")),
            error=_opt_str(f"{field} error", item.get("error")),
        )
        for item in value[-MAX_RUNS:]
    )


_CHECKS: dict[str, Callable[[str, object], Any]] = {
    "id": _req_str,
    "status": _status,
    "created_at": _time,
    "updated_at": _time,
    "name": _opt_str,
    "agent_id": _opt_str,
    "profile": _opt_str,
    "profile_args": _count,
    "workspace_id": _opt_str,
    "tmux_socket": _opt_str,
    "tmux_session": _opt_str,
    "tmux_session_id": _opt_str,
    "pane_id": _opt_str,
    "pid": _opt_int,
    "pid_create_time": _opt_float,
    "command": _command,
    "cwd": _opt_str,
    "environment": _environment,
    "masked_env": _names,
    "masked_args": _positions,
    "exit_code": _opt_int,
    "error": _opt_str,
    "started_at": _time,
    "stopped_at": _time,
    "activity": _activity,
    "activity_at": _time,
    "runs": _runs,
    "revision": _int,
    "schema": _int,
}
assert set(_CHECKS) == _FIELD_SET, "every field needs a type check"
