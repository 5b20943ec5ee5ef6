"""Turn global CLI options and the environment into a store and a manager."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path

from amux_tmux.manager import Manager
from amux_tmux.store import FileStore
from amux_tmux.store.file import AMUX_DIR
from amux_tmux.tmux import DEFAULT_SOCKET


def find_root(explicit: str | None, environ: Mapping[str, str], cwd: Path) -> Path:
    """Return the project root: ``--root``, ``$AMUX_ROOT``, the nearest ancestor of
    ``cwd`` holding ``.amux/``, else ``cwd`` itself."""
    chosen = explicit or environ.get("AMUX_ROOT")
    if chosen:
        return Path(chosen).expanduser().resolve()
    here = cwd.resolve()
    for candidate in (here, *here.parents):
        if (candidate / AMUX_DIR).is_dir():
            return candidate
    return here


def socket_name(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    """Return the tmux socket from ``--socket``, ``$AMUX_TMUX_SOCKET`` or the default."""
    return str(args.socket or environ.get("AMUX_TMUX_SOCKET") or DEFAULT_SOCKET)


def make_store(args: argparse.Namespace) -> FileStore:
    """Build the store for this invocation."""
    return FileStore(find_root(args.root, os.environ, Path.cwd()))


def make_manager(args: argparse.Namespace) -> Manager:
    """Build the manager for this invocation."""
    return Manager(make_store(args), socket=socket_name(args, os.environ))
