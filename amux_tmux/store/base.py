"""The storage interface the lifecycle code depends on."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection
from typing import Protocol

from amux_tmux.model import Session, Status

#: A change to apply under the record's lock; returning the input unchanged writes nothing.
Mutation = Callable[[Session], Session]


class SessionStore(Protocol):
    """Where session records live. Every change is a locked read-modify-write."""

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

    def list(
        self,
        *,
        status: Collection[Status] | None = None,
        agent_id: str | None = None,
        workspace_id: str | None = None,
        include_ended: bool = True,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Session]:
        """Return records matching every filter, sorted by ``(created_at, id)``."""
        ...

    def resolve(self, ref: str) -> Session:
        """Find one record by full id, exact name or unique id prefix."""
        ...

    def lock(
        self, session_id: str, timeout: float | None = None
    ) -> contextlib.AbstractContextManager[None]:
        """Hold the record's lock (for multi-step work such as starting tmux)."""
        ...
