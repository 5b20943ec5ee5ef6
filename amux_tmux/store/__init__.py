"""Session record storage."""

from __future__ import annotations

from amux_tmux.store.base import Listing, Mutation, Problem, Query, SessionStore
from amux_tmux.store.file import FileStore, without_gc

__all__ = [
    "FileStore",
    "Listing",
    "Mutation",
    "Problem",
    "Query",
    "SessionStore",
    "without_gc",
]
