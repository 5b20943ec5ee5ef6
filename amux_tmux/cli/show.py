"""``amux-tmux show``: one record, with what tmux says about it."""

from __future__ import annotations

import argparse

from amux_tmux import exc
from amux_tmux.cli.context import GlobalArgs, make_manager
from amux_tmux.cli.output import print_json, record_json, show_text, warn
from amux_tmux.manager import Observed

EXAMPLES = """examples:
  amux-tmux show review
  amux-tmux show 7f3 --json | jq .activity
"""


class ShowArgs(GlobalArgs):
    """``show``'s options."""

    ref: str


def create_show_subparser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``show``'s options to ``parser``."""
    parser.epilog = EXAMPLES
    parser.add_argument("ref", help="session id, unique id prefix, or name")
    return parser


def command_show(args: ShowArgs) -> int:
    """Print the record; still print it (with a warning) when tmux cannot be asked."""
    manager = make_manager(args)
    try:
        observed = manager.look(args.ref, activity=True)
    except exc.TmuxUnavailable as err:
        warn(str(err))
        observed = Observed(manager.resolve(args.ref))
    for message in manager.warnings:
        warn(message)
    if observed.unreachable:
        warn(observed.unreachable)
    if args.json:
        print_json(record_json(observed))
    else:
        print(show_text(observed), end="")
    return 0
