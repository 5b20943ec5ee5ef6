"""``amux-tmux show``: one record, with what tmux says about it."""

from __future__ import annotations

import argparse
import sys

from amux_tmux import exc
from amux_tmux.cli.context import make_manager
from amux_tmux.cli.output import print_json, record_json, show_text
from amux_tmux.manager import Observed


def create_show_subparser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``show``'s options to ``parser``."""
    parser.add_argument("ref", help="session id, unique id prefix, or name")
    return parser


def command_show(args: argparse.Namespace) -> int:
    """Print the record; still print it (with a warning) when tmux cannot be asked."""
    manager = make_manager(args)
    try:
        observed = manager.look(args.ref)
    except exc.TmuxUnavailable as err:
        print(f"amux-tmux: warning: {err}", file=sys.stderr)
        observed = Observed(manager.resolve(args.ref))
    if args.json:
        print_json(record_json(observed))
    else:
        print(show_text(observed), end="")
    return 0
