"""``amux-tmux reconcile``: make records and tmux agree; safe to run from cron."""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter

from amux_tmux import exc
from amux_tmux.cli.context import GlobalArgs, make_manager
from amux_tmux.cli.output import one_line, print_json, printable, warn
from amux_tmux.manager import DEFAULT_GRACE, Kind, Policy, ReconcileReport

EXAMPLES = """examples:
  amux-tmux reconcile --dry-run        # the plan, nothing changed
  amux-tmux reconcile                  # mark: orphaned records, @amux_orphan sessions
  amux-tmux reconcile --remove         # delete orphan records, kill orphan sessions
  */5 * * * * /path/.venv/bin/amux-tmux --root /path/project reconcile   (crontab; see examples/)

Quiet when all is well; "busy" (exit 0) while another run holds the lock; exit 5 (nothing
changed on it) when a server cannot be asked. Sessions this project did not start are
never touched.
"""

_PAST = {
    Kind.MARK_ORPHANED: "marked orphaned",
    Kind.MARK_COMPLETED: "marked completed",
    Kind.MARK_FAILED: "marked failed",
    Kind.MARK_STOPPED: "marked stopped",
    Kind.MARK_RUNNING: "marked running again",
    Kind.REMOVE_RECORD: "records removed",
    Kind.TAG_SESSION: "tmux sessions tagged orphan",
    Kind.KILL_SESSION: "tmux sessions killed",
}


class ReconcileArgs(GlobalArgs):
    """``reconcile``'s options."""

    remove: bool
    dry_run: bool
    grace: float


def create_reconcile_subparser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``reconcile``'s options to ``parser``."""
    parser.epilog = EXAMPLES
    parser.add_argument(
        "--remove", action="store_true",
        help="delete orphan records and kill orphan tmux sessions (default: mark them)",
    )  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    parser.add_argument(
        "--grace", type=float, default=DEFAULT_GRACE,
        help="leave alone anything changed less than this many seconds ago (default %(default)g)",
    )  # fmt: skip
    return parser


def summary(report: ReconcileReport) -> str:
    """Return the one-line human summary ('' when there was nothing to do)."""
    changes = [a for a in report.actions if a.kind is not Kind.REPORT]
    if not changes:
        return ""
    if report.dry_run:
        counts = Counter(a.kind for a in changes)
        return "reconcile (dry run): would do " + ", ".join(
            f"{k.value} x{n}" for k, n in counts.items()
        )
    done = Counter(o.action.kind for o in report.outcomes if o.done)
    parts = [f"{n} {_PAST[k]}" for k, n in done.items()]
    skipped = sum(
        1
        for o in report.outcomes
        if not o.done and not o.detail and o.action.kind is not Kind.REPORT
    )
    if skipped:
        parts.append(f"{skipped} skipped (changed meanwhile)")
    if report.failed:
        parts.append(f"{len(report.failed)} failed")
    return "reconcile: " + (", ".join(parts) if parts else "nothing done")


def command_reconcile(args: ReconcileArgs) -> int:
    """Run one reconcile; exit 0 'busy' if another run holds the lock."""
    if not math.isfinite(args.grace) or args.grace < 0:
        raise exc.UsageError("--grace takes seconds >= 0")
    manager = make_manager(args)
    policy = Policy(remove=args.remove, grace=args.grace)
    try:
        report = manager.reconcile(policy, dry_run=args.dry_run)
    except exc.LockTimeout:
        # Cron must neither pile up runs nor mail an error for an overlap.
        if args.json:
            print_json({"busy": True, "actions": []})
        else:
            print("reconcile: busy (another reconcile is running)")
        return 0
    if args.json:
        items = (
            [a.to_dict() for a in report.actions]
            if report.dry_run
            else [o.to_dict() for o in report.outcomes]
        )
        print_json(
            {"busy": False, "dry_run": report.dry_run, "tmux_calls": report.tmux_calls,
             "foreign_sessions": report.foreign,
             "problems": [p.to_dict() for p in report.problems],
             "unreachable": report.unreachable, "actions": items}
        )  # fmt: skip
    else:
        for problem in report.problems:
            warn(f"{problem} (its tmux session is left alone)")
        for path, why in report.unreachable.items():
            warn(f"tmux on {path} could not be asked, its records are unchanged: {why}")
        for action in report.actions:
            if action.kind is Kind.REPORT:
                warn(f"session {action.session_id}: {action.reason}")
        line = summary(report)
        if line:
            print(line)
        for o in report.failed:
            print(
                f"reconcile: {o.action.kind.value} {o.action.session_id}: {one_line(o.detail)}",
                file=sys.stderr,
            )
        if report.dry_run:
            for a in report.actions:
                if a.kind is not Kind.REPORT:
                    where = printable(a.tmux_session or "-")
                    print(f"  {a.kind.value} {a.session_id} ({where}): {a.reason}")
    if report.unreachable:
        return exc.EXIT_TMUX
    return 1 if report.failed else 0
