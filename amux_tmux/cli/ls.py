"""``amux-tmux list`` (``ls``): sessions like ``docker ps``."""

from __future__ import annotations

import argparse
import sys

from amux_tmux import exc
from amux_tmux.cli.context import make_manager
from amux_tmux.cli.output import age, command_text, print_json, record_json, table
from amux_tmux.model import Status


def create_ls_subparser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``list``'s options to ``parser``."""
    parser.add_argument(
        "--status", action="append", choices=[s.value for s in Status], help="only this status"
    )
    parser.add_argument("--agent", dest="agent_id", help="only this agent")
    parser.add_argument("--workspace", dest="workspace_id", help="only this workspace")
    parser.add_argument("--limit", type=int, help="at most N sessions")
    parser.add_argument("--offset", type=int, default=0, help="skip the first M sessions")
    parser.add_argument(
        "-a", "--all", action="store_true", help="include stopped, completed and failed"
    )
    parser.add_argument(
        "--live", action="store_true", help="ask tmux (one call) and add a STATE column"
    )
    return parser


def command_ls(args: argparse.Namespace) -> int:
    """Print the table (or a JSON array of records)."""
    if (args.limit is not None and args.limit < 0) or args.offset < 0:
        raise exc.UsageError("--limit and --offset take whole numbers >= 0")
    statuses = {Status(s) for s in args.status} if args.status else None
    manager = make_manager(args)
    rows = manager.list(
        status=statuses,
        agent_id=args.agent_id,
        workspace_id=args.workspace_id,
        include_ended=args.all or bool(statuses),
        limit=args.limit,
        offset=args.offset,
        live=args.live,
    )
    for problem in manager.problems:
        print(f"amux-tmux: warning: {problem}", file=sys.stderr)
    if args.json:
        print_json([record_json(o) for o in rows])
        return 0
    headers = [
        "ID",
        "NAME",
        "AGENT",
        "STATUS",
        *(["STATE"] if args.live else []),
        "AGE",
        "COMMAND",
    ]
    body = []
    for o in rows:
        s = o.session
        cells = [s.id, s.name or "-", s.agent_id or "-", s.status.value]
        if args.live:
            cells.append(o.state)
        body.append([*cells, age(s), command_text(s)])
    print(table(body, headers), end="")
    return 0
