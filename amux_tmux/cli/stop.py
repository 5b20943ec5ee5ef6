"""``amux-tmux stop``: end sessions' agents and their tmux sessions."""

from __future__ import annotations

import argparse
import math

from amux_tmux import exc
from amux_tmux.cli.context import GlobalArgs, make_manager
from amux_tmux.cli.output import for_each, print_json, record_json
from amux_tmux.manager import DEFAULT_STOP_TIMEOUT, Observed

EXAMPLES = """examples:
  amux-tmux stop review
  amux-tmux stop 7f3 a91 --timeout 0   # kill at once
"""


class StopArgs(GlobalArgs):
    """``stop``'s options."""

    refs: list[str]
    timeout: float


def create_stop_subparser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``stop``'s options to ``parser``."""
    parser.epilog = EXAMPLES
    parser.add_argument("refs", nargs="+", metavar="REF", help="session id, id prefix, or name")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_STOP_TIMEOUT,
        help="seconds the agent gets to exit on SIGTERM (default %(default)s; 0 kills at once)",
    )  # fmt: skip
    return parser


def command_stop(args: StopArgs) -> int:
    """Stop each session and print its id and final status."""
    if not math.isfinite(args.timeout) or args.timeout < 0:
        raise exc.UsageError("--timeout takes seconds >= 0")
    manager = make_manager(args)

    def one(ref: str) -> None:
        session = manager.stop(ref, timeout=args.timeout)
        if args.json:
            print_json(record_json(Observed(session)))
        else:
            code = "" if session.exit_code is None else f" (exit {session.exit_code})"
            print(f"{session.id} {session.status.value}{code}")

    return for_each(args.refs, one)
