"""``amux-tmux prune``: remove the records (and logs) of ended sessions."""

from __future__ import annotations

import argparse

from amux_tmux.cli.context import GlobalArgs, make_manager
from amux_tmux.cli.output import print_json

EXAMPLES = """examples:
  amux-tmux prune --dry-run    # what would go
  amux-tmux prune
"""


class PruneArgs(GlobalArgs):
    """``prune``'s options."""

    dry_run: bool


def create_prune_subparser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``prune``'s options to ``parser``."""
    parser.epilog = EXAMPLES
    parser.add_argument("--dry-run", action="store_true", help="list them, remove nothing")
    return parser


def command_prune(args: PruneArgs) -> int:
    """Remove stopped, completed and failed sessions; print one line each."""
    pruned = make_manager(args).prune(dry_run=args.dry_run)
    if args.json:
        print_json({"dry_run": args.dry_run, "ids": [s.id for s in pruned]})
        return 0
    verb = "would remove" if args.dry_run else "removed"
    for session in pruned:
        print(f"{verb} {session.id} ({session.status.value})")
    return 0
