"""``amux-tmux attach``: put this terminal on a session, from anywhere."""

from __future__ import annotations

import argparse
import os
import sys

from amux_tmux.cli.context import GlobalArgs, make_manager
from amux_tmux.manager import Manager

EXAMPLES = """examples:
  amux-tmux attach review          # by name, id, or unique id prefix; detach with C-b d
  amux-tmux attach 7f3 --in window # inside your own tmux: a new window instead of a popup
"""


class AttachArgs(GlobalArgs):
    """``attach``'s options."""

    ref: str
    attach_in: str


def create_attach_subparser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``attach``'s options to ``parser``."""
    parser.epilog = EXAMPLES
    parser.add_argument("ref", help="session id, unique id prefix, or name")
    parser.add_argument(
        "--in", dest="attach_in", choices=["popup", "window"], default="popup",
        help="inside another tmux, open the session in a popup (default) or a new window",
    )  # fmt: skip
    return parser


def attach_to(manager: Manager, ref: str, how: str) -> int:
    """Attach (exec tmux), or show the session in the tmux this runs in."""
    argv = manager.attach(ref, os.environ, how)
    if argv is None:
        return 0
    sys.stdout.flush()
    env = {k: v for k, v in os.environ.items() if k != "TMUX"}
    os.execvpe(argv[0], argv, env)  # argv is our own tmux command line


def command_attach(args: AttachArgs) -> int:
    """Attach to the session ``args.ref``."""
    return attach_to(make_manager(args), args.ref, args.attach_in)
