"""Exceptions raised by amux_tmux.

Every error derives from :class:`AmuxError`, builds its own one-line message and
carries the CLI exit code that the CLI contract assigns to it, so the CLI never
has to guess how to report something.
"""

from __future__ import annotations

from collections.abc import Sequence

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_BUSY = 4
EXIT_TMUX = 5


class AmuxError(Exception):
    """Base class of every amux_tmux error."""

    exit_code: int = EXIT_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


# --- bad input (exit 2) ---------------------------------------------------------------


class UsageError(AmuxError):
    """The caller asked for something malformed."""

    exit_code = EXIT_USAGE


class InvalidSessionId(UsageError):
    """A session id does not match ``^[a-z0-9][a-z0-9-]{2,63}$``."""

    def __init__(self, value: str) -> None:
        shown = value if len(value) <= 40 else value[:37] + "..."
        super().__init__(
            # No ": " right after the value: the redactor would take "passwd': x" for a
            # credential and mask the explanation.
            f"invalid session id {shown!r} (expected 3-64 characters of a-z, 0-9 and '-', "
            "starting with a letter or digit)"
        )
        self.value = value


class AmbiguousReference(UsageError):
    """A prefix or name matches more than one session."""

    def __init__(self, ref: str, candidates: Sequence[str]) -> None:
        super().__init__(f"{ref!r} is ambiguous; it matches: {', '.join(sorted(candidates))}")
        self.ref = ref
        self.candidates = tuple(sorted(candidates))


class InvalidTransition(UsageError):
    """A lifecycle step is not allowed from the record's current status."""

    def __init__(self, session_id: str, current: str, target: str) -> None:
        super().__init__(f"session {session_id} is {current}; it cannot become {target}")
        self.session_id = session_id
        self.current = current
        self.target = target


class SessionIsLive(UsageError):
    """``rm`` without ``--force`` on a session whose tmux session still runs."""

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"session {session_id} is still running; stop it first or use 'rm --force'"
        )
        self.session_id = session_id


class NameInUse(UsageError):
    """Another live session already has this name."""

    def __init__(self, name: str, session_id: str) -> None:
        super().__init__(f"name {name!r} is already used by live session {session_id}")
        self.name = name
        self.session_id = session_id


class UnsafePath(UsageError):
    """A store directory or record is a symlink or otherwise not ours to use."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"refusing to use {path}: {why}")
        self.path = path


class RecordTooLarge(UsageError):
    """A new record would leave too little room to grow under the record size cap."""

    def __init__(self, size: int, limit: int, what: str) -> None:
        super().__init__(
            f"the session's record would be {size} bytes; new records are limited to "
            f"{limit} bytes so that later changes fit: shorten {what}"
        )
        self.size = size
        self.limit = limit


class ConfigError(UsageError):
    """A configuration file cannot be used; the message names its file, line and key.

    Rendered as ``FILE:LINE: KEY: WHY`` (line and key left out when they do not apply).
    """

    def __init__(
        self, path: str, why: str, *, line: int | None = None, key: str | None = None
    ) -> None:
        where = path if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {key}: {why}" if key else f"{where}: {why}")
        self.path = path
        self.why = why
        self.line = line
        self.key = key


class UnknownAgent(UsageError):
    """``start AGENT`` names no agent profile."""

    def __init__(self, name: str, known: Sequence[str], *, suggestion: str | None = None) -> None:
        shown = name if len(name) <= 40 else name[:37] + "..."
        if not known:
            message = (
                f"unknown agent {shown!r}: no agent profiles are defined; add one under "
                "'agents:' in .amux/config.yaml or ~/.config/amux-tmux/config.yaml"
            )
        else:
            names = sorted(known)
            listed = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
            hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
            message = f"unknown agent {shown!r}{hint}; known agents: {listed}"
        super().__init__(message)
        self.name = name
        self.known = tuple(sorted(known))


# --- not found (exit 3) ---------------------------------------------------------------


class SessionNotFound(AmuxError):
    """No record matches a reference."""

    exit_code = EXIT_NOT_FOUND

    def __init__(self, ref: str) -> None:
        super().__init__(f"no session matches {ref!r}")
        self.ref = ref


# --- busy (exit 4) --------------------------------------------------------------------


class LockTimeout(AmuxError):
    """A record lock could not be taken within the allowed time."""

    exit_code = EXIT_BUSY

    def __init__(self, what: str, timeout: float) -> None:
        super().__init__(f"{what} is locked by another amux process (waited {timeout:g}s)")
        self.what = what
        self.timeout = timeout


# --- operation failed (exit 1) --------------------------------------------------------


class StoreError(AmuxError):
    """Reading or writing a record failed; the previous record is intact."""


class CorruptRecord(StoreError):
    """A record file cannot be used: unreadable, not YAML, or outside the schema.

    Its tmux session (if any) is left alone until a person fixes or removes the file.
    """

    def __init__(self, path: str, why: str, quarantined_to: str | None = None) -> None:
        where = f" (moved to {quarantined_to})" if quarantined_to else ""
        super().__init__(
            f"bad record {path}: {why}{where}; fix the file, or remove it with "
            "'amux-tmux rm --force ID' (its tmux session is left alone until then)"
        )
        self.path = path
        self.why = why
        self.quarantined_to = quarantined_to


class SessionStartFailed(AmuxError):
    """tmux refused to create the session; the record is marked failed."""

    def __init__(self, session_id: str, why: str) -> None:
        super().__init__(f"could not start session {session_id}: {why}")
        self.session_id = session_id


class NotOrphaned(AmuxError):
    """``recover`` found a session that someone else restarted meanwhile."""

    def __init__(self, session_id: str, status: str) -> None:
        super().__init__(f"session {session_id} is no longer orphaned (status {status})")
        self.session_id = session_id


class SessionEnded(AmuxError):
    """The session's agent is not running, so it cannot take input or be attached."""

    def __init__(self, session_id: str, status: str) -> None:
        super().__init__(
            f"session {session_id} is not running (status {status}); "
            f"'amux-tmux restart {session_id}' runs it again"
        )
        self.session_id = session_id


# --- tmux unavailable (exit 5) --------------------------------------------------------


class TmuxUnavailable(AmuxError):
    """tmux is missing, too old, hung, or its server cannot be queried."""

    exit_code = EXIT_TMUX


class TmuxNotFound(TmuxUnavailable):
    """No tmux binary on PATH."""

    def __init__(self) -> None:
        super().__init__("tmux not found on PATH; install tmux >= 3.2 (e.g. apt-get install tmux)")


class TmuxVersionTooOld(TmuxUnavailable):
    """tmux is older than the minimum supported version."""

    def __init__(self, found: str, needed: str) -> None:
        super().__init__(f"tmux {found} is too old; amux-tmux needs tmux >= {needed}")


class TmuxTimeout(TmuxUnavailable):
    """A tmux command did not answer in time (tmux hangs when out of descriptors)."""

    def __init__(self, command: str, timeout: float) -> None:
        super().__init__(f"tmux {command} did not answer within {timeout:g}s")


class TmuxQueryFailed(TmuxUnavailable):
    """tmux answered with an error that is not "no server running"."""

    def __init__(self, command: str, detail: str) -> None:
        super().__init__(f"tmux {command} failed: {detail}")


class TmuxCommandFailed(AmuxError):
    """A tmux command that changes state failed."""

    def __init__(self, command: str, detail: str) -> None:
        super().__init__(f"tmux {command} failed: {detail}")
        self.detail = detail
