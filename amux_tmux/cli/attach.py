"""``amux-tmux attach``: put this terminal on a session."""

from __future__ import annotations

import argparse
import os

from amux_tmux.cli.context import make_manager
from amux_tmux.manager import Manager


def create_attach_subparser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``attach``'s options to ``parser``."""
    parser.add_argument("ref", help="session id, unique id prefix, or name")
    return parser


def attach_to(manager: Manager, ref: str) -> int:
    """Attach (exec tmux) or, inside the same tmux server, switch the client."""
    argv = manager.attach(ref, os.environ)
    if argv is None:
        return 0
    os.execvp(argv[0], list(argv))  # argv is our own tmux command line


def command_attach(args: argparse.Namespace) -> int:
    """Attach to the session ``args.ref``."""
    return attach_to(make_manager(args), args.ref)
