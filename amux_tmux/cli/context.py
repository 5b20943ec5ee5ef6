"""Turn global CLI options and the environment into a store and a manager."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from amux_tmux import exc
from amux_tmux.store import FileStore
from amux_tmux.store.file import AMUX_DIR

if TYPE_CHECKING:
    from amux_tmux.manager import Manager

log = logging.getLogger(__name__)


class GlobalArgs(argparse.Namespace):
    """Options every command takes, before or after its name."""

    root: str | None = None
    socket: str | None = None
    json: bool = False
    log_level: str | None = None


def find_root(explicit: str | None, environ: Mapping[str, str], cwd: Path | None = None) -> Path:
    """Return the project root: ``--root``, ``$AMUX_ROOT``, the nearest ancestor of
    ``cwd`` (default: the current directory) holding ``.amux/``, else ``cwd`` itself."""
    try:
        chosen = explicit or environ.get("AMUX_ROOT")
        if chosen:
            root = Path(chosen).expanduser().resolve()
            if root.exists() and not root.is_dir():
                raise exc.UsageError(f"the project root {root} is not a directory")
            return root
        here = (cwd or Path.cwd()).resolve()
    except FileNotFoundError:  # getcwd() of a directory that was removed
        raise exc.UsageError(
            "the current directory no longer exists: cd elsewhere, or give --root as an "
            "absolute path"
        ) from None
    for candidate in (here, *here.parents):
        if (candidate / AMUX_DIR).is_dir():
            return candidate
    return here


def socket_name(args: GlobalArgs, environ: Mapping[str, str]) -> str:
    """Return the tmux socket from ``--socket``, ``$AMUX_TMUX_SOCKET`` or the default."""
    from amux_tmux.manager import DEFAULT_SOCKET

    return str(args.socket or environ.get("AMUX_TMUX_SOCKET") or DEFAULT_SOCKET)


def make_store(args: GlobalArgs) -> FileStore:
    """Build the store alone, for ``mark``: a hook runs it on every agent event, and the
    manager's tmux and reconcile machinery would cost it a third of its time."""
    return FileStore(find_root(args.root, os.environ))


def make_manager(args: GlobalArgs) -> Manager:
    """Build the manager for this invocation."""
    from amux_tmux.manager import open_manager

    root = find_root(args.root, os.environ)
    socket = socket_name(args, os.environ)
    manager = open_manager(root, socket=socket, environ=os.environ)
    log.debug("store %s, tmux socket %s", root / AMUX_DIR, manager.backend.socket_path)
    return manager
