"""``amux-tmux rename``: give a session another name."""

from __future__ import annotations

import argparse

from amux_tmux.cli.context import GlobalArgs, make_manager
from amux_tmux.cli.output import print_json, record_json
from amux_tmux.manager import Observed

EXAMPLES = """examples:
  amux-tmux rename 7f3 review
"""


class RenameArgs(GlobalArgs):
    """``rename``'s options."""

    ref: str
    name: str


def create_rename_subparser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``rename``'s options to ``parser``."""
    parser.epilog = EXAMPLES
    parser.add_argument("ref", help="session id, unique id prefix, or name")
    parser.add_argument("name", help="the new name (unique among live sessions)")
    return parser


def command_rename(args: RenameArgs) -> int:
    """Rename and print the id."""
    session = make_manager(args).rename(args.ref, args.name)
    if args.json:
        print_json(record_json(Observed(session)))
    else:
        print(session.id)
    return 0
