"""``amux-tmux recover``: after a reboot, restart every orphaned session of this store."""

from __future__ import annotations

import argparse
import os
import sys

from amux_tmux import exc
from amux_tmux.cli.context import GlobalArgs, make_manager
from amux_tmux.cli.output import one_line, print_json, printable

EXAMPLES = """examples:
  amux-tmux reconcile && amux-tmux recover       # after a reboot: asks first
  amux-tmux recover --dry-run
  amux-tmux recover --yes                        # from a script
"""


class RecoverArgs(GlobalArgs):
    """``recover``'s options."""

    dry_run: bool
    yes: bool


def create_recover_subparser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``recover``'s options to ``parser``."""
    parser.epilog = EXAMPLES
    parser.add_argument("--dry-run", action="store_true", help="say what would restart")
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask")
    return parser


def _confirm(count: int) -> bool:
    if not sys.stdin.isatty():
        raise exc.UsageError(
            "recover asks before restarting; not on a terminal, so nothing was done "
            "(add --yes, or --dry-run to see the plan)"
        )
    print(f"restart {count} orphaned session(s)? [y/N] ", end="", flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def command_recover(args: RecoverArgs) -> int:
    """Restart orphans oldest first, one line each; exit 1 if any failed."""
    manager = make_manager(args)
    planned = manager.recover(dry_run=True, caller=os.environ)
    if not planned:
        if args.json:
            print_json({"dry_run": args.dry_run, "sessions": []})
        return 0
    if args.dry_run:
        results = planned
    elif args.yes or _confirm(len(planned)):
        results = manager.recover(caller=os.environ)
    else:
        return 1
    if args.json:
        print_json(
            {
                "dry_run": args.dry_run,
                "sessions": [
                    {"id": r.session.id, "name": r.session.name, "resumed": r.resumed,
                     "error": r.error, "skipped": r.skipped}
                    for r in results
                ],
            }
        )  # fmt: skip
    else:
        for r in results:
            how = "resume" if r.resumed else "restart"
            label = (
                f"{r.session.id} ({printable(r.session.name)})" if r.session.name else r.session.id
            )
            if r.error:
                print(f"{label}: failed: {one_line(r.error)}", file=sys.stderr)
            elif r.skipped:  # not this run's to report: someone else brought it back
                print(f"{label}: left alone: {one_line(r.skipped)}", file=sys.stderr)
            else:
                done = {"resume": "resumed", "restart": "restarted"}[how]
                print(f"{label}: {'would ' + how if args.dry_run else done}")
    return 1 if any(r.error for r in results) else 0
