"""amux_tmux: a session manager for AI coding agents running in tmux."""

from __future__ import annotations

from amux_tmux.__about__ import __version__

__all__ = ["__version__"]
