"""Session record storage."""

from __future__ import annotations

from amux_tmux.store.base import Mutation, SessionStore
from amux_tmux.store.file import FileStore

__all__ = ["FileStore", "Mutation", "SessionStore"]
