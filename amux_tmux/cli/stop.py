"""``amux-tmux stop``: end a session's agent and its tmux session."""

from __future__ import annotations

import argparse

from amux_tmux import exc
from amux_tmux.cli.context import make_manager
from amux_tmux.cli.output import print_json, record_json
from amux_tmux.manager import DEFAULT_STOP_TIMEOUT, Observed


def create_stop_subparser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``stop``'s options to ``parser``."""
    parser.add_argument("ref", help="session id, unique id prefix, or name")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_STOP_TIMEOUT,
        help="seconds the agent gets to exit on SIGTERM (default %(default)s; 0 kills at once)",
    )
    return parser


def command_stop(args: argparse.Namespace) -> int:
    """Stop the session and print its id and final status."""
    if args.timeout < 0:
        raise exc.UsageError("--timeout takes seconds >= 0")
    session = make_manager(args).stop(args.ref, timeout=args.timeout)
    if args.json:
        print_json(record_json(Observed(session)))
    else:
        code = "" if session.exit_code is None else f" (exit {session.exit_code})"
        print(f"{session.id} {session.status.value}{code}")
    return 0
