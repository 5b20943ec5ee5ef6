"""``amux-tmux mark``: an agent's hook says what it is doing (working, waiting, idle)."""

from __future__ import annotations

import argparse
import os

from amux_tmux import exc
from amux_tmux.cli.context import GlobalArgs, make_store
from amux_tmux.model import Activity

EXAMPLES = """examples (inside an agent started by amux, AMUX_SESSION_ID and AMUX_ROOT are set):
  amux-tmux mark waiting            # e.g. from Claude Code's Notification hook
  amux-tmux mark idle 7f3a9c2e1b    # another session, by reference
"""
STATES = [Activity.WORKING.value, Activity.WAITING.value, Activity.IDLE.value]


class MarkArgs(GlobalArgs):
    """``mark``'s options."""

    state: str
    ref: str | None


def create_mark_subparser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``mark``'s options to ``parser``."""
    parser.epilog = EXAMPLES
    parser.add_argument("state", choices=STATES, help="what the agent is doing")
    parser.add_argument("ref", nargs="?", help="session (default: $AMUX_SESSION_ID)")
    return parser


def command_mark(args: MarkArgs) -> int:
    """Record the state; no tmux call, so hooks stay fast."""
    ref = args.ref or os.environ.get("AMUX_SESSION_ID")
    if not ref:
        raise exc.UsageError("no session: give REF, or run inside an amux session")
    # The one command that writes through the store itself: see make_store.
    state = Activity(args.state)
    store = make_store(args)
    store.update(store.resolve(ref).id, lambda s: s.marked(state))
    return 0
