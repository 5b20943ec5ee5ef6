"""The storage interface the lifecycle code depends on, and the values it trades in."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Protocol

from amux_tmux.model import Session, Status

#: A change to apply under the record's lock; returning the input unchanged writes nothing.
Mutation = Callable[[Session], Session]


@dataclasses.dataclass(frozen=True, slots=True)
class Query:
    """Which records ``list`` returns, sorted by ``(created_at, id)``.

    >>> Query(limit=20).include_ended
    True
    """

    status: Collection[Status] | None = None
    agent_id: str | None = None
    workspace_id: str | None = None
    include_ended: bool = True
    limit: int | None = None
    offset: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """A record file that could not be used.

    Its ``session_id`` (from the file name) still names a session: whatever runs under
    that id is protected until a person fixes or removes the file.
    """

    path: str
    why: str
    session_id: str | None = None
    #: Where a hostile or non-YAML file was moved, if it was.
    quarantined_to: str | None = None

    def __str__(self) -> str:
        where = f" (moved to {self.quarantined_to})" if self.quarantined_to else ""
        return f"bad record {self.path}: {self.why}{where}"

    def to_dict(self) -> dict[str, str | None]:
        """Return plain data for ``--json``."""
        return {
            "id": self.session_id,
            "path": self.path,
            "why": self.why,
            "quarantined_to": self.quarantined_to,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Listing:
    """What ``list`` found: the page of records asked for and every bad file seen."""

    sessions: list[Session]
    problems: list[Problem]
    #: How many records matched before ``limit``/``offset``.
    total: int

    @property
    def problem_ids(self) -> frozenset[str]:
        """Every session id named by a problem (a bad file or a quarantined copy).

        Whatever runs under these ids must be left alone until a person acts.
        """
        return frozenset(p.session_id for p in self.problems if p.session_id)


class SessionStore(Protocol):
    """Where session records live. Every change is a locked read-modify-write.

    Reading never creates anything; the first write creates the store and its id.
    """

    root: Path

    @property
    def store_id(self) -> str | None:
        """This store's random, stable id; ``None`` before anything was written."""
        ...

    def ensure_store_id(self) -> str:
        """Return the store id, creating the store (and the id) if need be."""
        ...

    def runtime_dir(self) -> Path:
        """Return a private directory for one-shot files (FIFOs); created if missing."""
        ...

    def log_path(self, session_id: str) -> Path:
        """Return where the pane output of ``session_id`` is kept."""
        ...

    def new_id(self) -> str:
        """Return an id no record or lock uses yet."""
        ...

    def get(self, session_id: str) -> Session:
        """Return the current record for ``session_id``."""
        ...

    def create(self, session: Session) -> Session:
        """Write a brand-new record (revision 1); fail if the id exists."""
        ...

    def update(self, session_id: str, mutate: Mutation) -> Session:
        """Re-read, apply ``mutate`` and write back, all under the record's lock."""
        ...

    def delete(self, session_id: str, check: Callable[[Session], None] | None = None) -> Session:
        """Remove a record under its lock after ``check`` (which may raise) approves."""
        ...

    def discard(self, session_id: str) -> None:
        """Remove a bad record file and its quarantined copies (``rm --force``)."""
        ...

    def list(self, query: Query | None = None) -> Listing:
        """Return records matching ``query`` and every problem met on the way.

        Problems include records that break the schema (left in place) and every
        quarantined copy; :attr:`Listing.problem_ids` names the sessions to protect.
        """
        ...

    def resolve(self, ref: str) -> Session:
        """Find one record by full id, else by exact name or unique id prefix.

        A ref that is one session's name and another's id prefix is ambiguous.
        """
        ...

    def lock(
        self, session_id: str, timeout: float | None = None
    ) -> contextlib.AbstractContextManager[None]:
        """Hold the record's lock (for multi-step work such as starting tmux)."""
        ...

    def store_lock(self, name: str, timeout: float) -> contextlib.AbstractContextManager[None]:
        """Hold a store-wide named lock such as ``reconcile``."""
        ...
