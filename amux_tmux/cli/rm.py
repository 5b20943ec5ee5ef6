"""``amux-tmux rm``: delete a session's record (and its tmux session)."""

from __future__ import annotations

import argparse

from amux_tmux.cli.context import make_manager
from amux_tmux.cli.output import print_json, record_json
from amux_tmux.manager import Observed


def create_rm_subparser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``rm``'s options to ``parser``."""
    parser.add_argument("ref", help="session id, unique id prefix, or name")
    parser.add_argument(
        "-f", "--force", action="store_true", help="also kill a session that is still running"
    )
    return parser


def command_rm(args: argparse.Namespace) -> int:
    """Remove the session and print its id."""
    session = make_manager(args).remove(args.ref, force=args.force)
    if args.json:
        print_json(record_json(Observed(session)))
    else:
        print(session.id)
    return 0
