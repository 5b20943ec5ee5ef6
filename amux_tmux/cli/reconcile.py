"""``amux-tmux reconcile``: make records and tmux agree; safe to run from cron."""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter

from amux_tmux import exc
from amux_tmux import reconcile as rec
from amux_tmux.cli.context import make_manager
from amux_tmux.cli.output import print_json
from amux_tmux.manager import ReconcileReport

_PAST = {
    rec.Kind.MARK_ORPHANED: "marked orphaned",
    rec.Kind.MARK_COMPLETED: "marked completed",
    rec.Kind.MARK_FAILED: "marked failed",
    rec.Kind.MARK_STOPPED: "marked stopped",
    rec.Kind.REMOVE_RECORD: "records removed",
    rec.Kind.TAG_SESSION: "tmux sessions tagged orphan",
    rec.Kind.KILL_SESSION: "tmux sessions killed",
}


def create_reconcile_subparser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``reconcile``'s options to ``parser``."""
    parser.add_argument(
        "--remove",
        action="store_true",
        help="delete orphan records and kill orphan tmux sessions (default: mark them)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    parser.add_argument(
        "--grace",
        type=float,
        default=rec.DEFAULT_GRACE,
        help="leave alone anything changed less than this many seconds ago (default %(default)g)",
    )
    return parser


def summary(report: ReconcileReport) -> str:
    """Return the one-line human summary ('' when there was nothing to do)."""
    if not report.actions:
        return ""
    if report.dry_run:
        counts = Counter(a.kind for a in report.actions)
        return "reconcile (dry run): would do " + ", ".join(
            f"{k.value} x{n}" for k, n in counts.items()
        )
    done = Counter(o.action.kind for o in report.outcomes if o.done)
    parts = [f"{n} {_PAST[k]}" for k, n in done.items()]
    skipped = sum(1 for o in report.outcomes if not o.done and not o.detail)
    failed = len(report.failed)
    if skipped:
        parts.append(f"{skipped} skipped (changed meanwhile)")
    if failed:
        parts.append(f"{failed} failed")
    return "reconcile: " + (", ".join(parts) if parts else "nothing done")


def command_reconcile(args: argparse.Namespace) -> int:
    """Run one reconcile; exit 0 'busy' if another run holds the lock."""
    if not math.isfinite(args.grace) or args.grace < 0:
        raise exc.UsageError("--grace takes seconds >= 0")
    manager = make_manager(args)
    policy = rec.Policy(remove=args.remove, grace=args.grace)
    try:
        report = manager.reconcile(policy, dry_run=args.dry_run)
    except exc.LockTimeout:
        # Cron must neither pile up runs nor mail an error for an overlap.
        if args.json:
            print_json({"busy": True, "actions": []})
        else:
            print("reconcile: busy (another reconcile is running)")
        return 0
    for problem in manager.problems:
        print(f"amux-tmux: warning: {problem}", file=sys.stderr)
    if args.json:
        items = (
            [a.to_dict() for a in report.actions]
            if report.dry_run
            else [o.to_dict() for o in report.outcomes]
        )
        print_json(
            {"busy": False, "dry_run": report.dry_run, "tmux_calls": report.tmux_calls,
             "actions": items}
        )  # fmt: skip
    else:
        line = summary(report)
        if line:
            print(line)
        for o in report.failed:
            print(f"reconcile: {o.action.kind.value} {o.action.session_id}: {o.detail}",
                  file=sys.stderr)  # fmt: skip
        if report.dry_run:
            for a in report.actions:
                print(f"  {a.kind.value} {a.session_id} ({a.tmux_session or '-'}): {a.reason}")
    return 1 if report.failed else 0
