"""``amux-tmux wait``: block until a session exits, or its agent works, waits or idles."""

from __future__ import annotations

import argparse
import math

from amux_tmux import exc
from amux_tmux.cli.context import GlobalArgs, make_manager
from amux_tmux.cli.output import print_json, record_json, warn

EXAMPLES = """examples:
  amux-tmux send review "fix the tests" && amux-tmux wait review --until waiting --timeout 600
  amux-tmux wait build --until exited && amux-tmux logs build -n 20
"""
UNTIL = ["exited", "working", "waiting", "idle"]


class WaitArgs(GlobalArgs):
    """``wait``'s options."""

    ref: str
    until: str
    timeout: float | None


def create_wait_subparser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``wait``'s options to ``parser``."""
    parser.epilog = (
        EXAMPLES + "\nExit 0 when reached, 1 on timeout, 3 if there is no such session.\n"
    )
    parser.add_argument("ref", help="session id, unique id prefix, or name")
    parser.add_argument("--until", required=True, choices=UNTIL, help="the state to wait for")
    parser.add_argument("--timeout", type=float, help="give up after this many seconds")
    return parser


def command_wait(args: WaitArgs) -> int:
    """Wait; exit 0 when reached, 1 on timeout."""
    if args.timeout is not None and (not math.isfinite(args.timeout) or args.timeout < 0):
        raise exc.UsageError("--timeout takes seconds >= 0")
    manager = make_manager(args)
    reached = manager.wait(args.ref, args.until, args.timeout)
    for message in manager.warnings:
        warn(message)
    if reached is None:
        if args.json:
            print_json({"reached": False, "until": args.until})
        return 1
    if args.json:
        print_json({"reached": True, "until": args.until, "session": record_json(reached)})
    return 0
