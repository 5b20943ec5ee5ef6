"""``amux-tmux rm``: delete sessions' records, logs and tmux sessions."""

from __future__ import annotations

import argparse

from amux_tmux.cli.context import GlobalArgs, make_manager
from amux_tmux.cli.output import for_each, print_json, record_json
from amux_tmux.manager import Observed

EXAMPLES = """examples:
  amux-tmux rm review          # an ended session
  amux-tmux rm -f 7f3 a91      # running ones too (their agents are killed)
"""


class RmArgs(GlobalArgs):
    """``rm``'s options."""

    refs: list[str]
    force: bool


def create_rm_subparser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``rm``'s options to ``parser``."""
    parser.epilog = EXAMPLES
    parser.add_argument("refs", nargs="+", metavar="REF", help="session id, id prefix, or name")
    parser.add_argument(
        "-f", "--force", action="store_true",
        help="also kill a running session; also remove a record file that cannot be read",
    )  # fmt: skip
    return parser


def command_rm(args: RmArgs) -> int:
    """Remove each session and print its id."""
    manager = make_manager(args)

    def one(ref: str) -> None:
        removed = manager.remove(ref, force=args.force)
        if isinstance(removed, str):
            if args.json:
                print_json({"id": removed, "removed": True})
            else:
                print(removed)
        elif args.json:
            print_json(record_json(Observed(removed)))
        else:
            print(removed.id)

    return for_each(args.refs, one)
