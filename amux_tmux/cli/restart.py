"""``amux-tmux restart``: run a session again under the same id, name and command."""

from __future__ import annotations

import argparse
import os

from amux_tmux.cli.context import GlobalArgs, make_manager
from amux_tmux.cli.output import print_json, record_json
from amux_tmux.manager import Observed

EXAMPLES = """examples:
  amux-tmux restart review             # same command (a running agent is stopped first)
  amux-tmux restart review --resume    # the profile's resume command (continue the chat)
  ANTHROPIC_API_KEY=... amux-tmux restart 7f3   # masked secrets come from this shell
"""


class RestartArgs(GlobalArgs):
    """``restart``'s options."""

    ref: str
    resume: bool


def create_restart_subparser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``restart``'s options to ``parser``."""
    parser.epilog = EXAMPLES
    parser.add_argument("ref", help="session id, unique id prefix, or name")
    parser.add_argument(
        "--resume", action="store_true", help="run the profile's resume command instead"
    )
    return parser


def command_restart(args: RestartArgs) -> int:
    """Restart and print the id (or the record with ``--json``)."""
    session = make_manager(args).restart(args.ref, resume=args.resume, caller=os.environ)
    if args.json:
        print_json(record_json(Observed(session)))
    else:
        print(session.id)
    return 0
