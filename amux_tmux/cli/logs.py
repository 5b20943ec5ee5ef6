"""``amux-tmux logs``: what the agent's pane shows."""

from __future__ import annotations

import argparse
import sys

from amux_tmux import exc
from amux_tmux.cli.context import make_manager


def create_logs_subparser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``logs``'s options to ``parser``."""
    parser.add_argument("ref", help="session id, unique id prefix, or name")
    parser.add_argument("-n", "--lines", type=int, help="only the last N lines")
    parser.add_argument(
        "-f", "--follow", action="store_true", help="keep printing until the agent exits"
    )
    return parser


def command_logs(args: argparse.Namespace) -> int:
    """Print the pane's text; with ``-f`` follow it until the agent exits or Ctrl-C."""
    if args.lines is not None and args.lines < 0:
        raise exc.UsageError("--lines takes a whole number >= 0")
    manager = make_manager(args)
    if not args.follow:
        sys.stdout.write(manager.logs(args.ref, args.lines))
        return 0

    def emit(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    try:
        manager.follow(args.ref, emit, args.lines)
    except KeyboardInterrupt:
        return 0
    return 0
