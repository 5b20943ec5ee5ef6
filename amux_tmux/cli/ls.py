"""``amux-tmux list`` (``ls``): sessions like ``docker ps``."""

from __future__ import annotations

import argparse

from amux_tmux import exc
from amux_tmux.cli.context import GlobalArgs, make_manager
from amux_tmux.cli.output import age, command_text, record_json, stream_json_list, table, warn
from amux_tmux.manager import Query, without_gc
from amux_tmux.model import Status

EXAMPLES = """examples:
  amux-tmux ls                    # sessions that have not ended
  amux-tmux ls --all --agent claude
  amux-tmux ls --live             # ask tmux: STATE and ACTIVITY (working/waiting/idle)
  amux-tmux ls --json --limit 20 --offset 40
"""


class ListArgs(GlobalArgs):
    """``list``'s options."""

    status: list[str] | None
    agent_id: str | None
    workspace_id: str | None
    limit: int | None
    offset: int
    all: bool
    live: bool


def create_list_subparser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``list``'s options to ``parser``."""
    parser.epilog = EXAMPLES
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
        "--live", action="store_true", help="ask tmux: add STATE and ACTIVITY columns"
    )
    return parser


def command_list(args: ListArgs) -> int:
    """Print the table (or a JSON array of records); bad records are warnings."""
    with without_gc():  # the listing is made once and printed: see without_gc
        return _list(args)


def _list(args: ListArgs) -> int:
    if (args.limit is not None and args.limit < 0) or args.offset < 0:
        raise exc.UsageError("--limit and --offset take whole numbers >= 0")
    statuses = {Status(s) for s in args.status} if args.status else None
    query = Query(
        status=statuses,
        agent_id=args.agent_id,
        workspace_id=args.workspace_id,
        include_ended=args.all or bool(statuses),
        limit=args.limit,
        offset=args.offset,
    )
    manager = make_manager(args)
    listed = manager.listing(query, live=args.live)
    for message in manager.warnings:
        warn(message)
    for problem in listed.problems:
        warn(str(problem))
    for row in listed.rows:
        if row.unreachable:
            warn(f"session {row.session.id}: {row.unreachable}")
            break
    if args.json:
        stream_json_list(record_json(o) for o in listed.rows)
        return 0
    headers = ["ID", "NAME", "AGENT", "STATUS"]
    if args.live:
        headers += ["STATE", "ACTIVITY"]
    headers += ["AGE", "COMMAND"]
    body = []
    for o in listed.rows:
        s = o.session
        status = s.status.value
        if s.exit_code is not None and s.status.ended:
            status += f"({s.exit_code})"
        cells = [s.id, s.name or "-", s.agent_id or "-", status]
        if args.live:
            cells += [o.state, o.activity.value if o.activity else "-"]
        body.append([*cells, age(s), command_text(s)])
    print(table(body, headers), end="")
    shown = len(listed.rows) + args.offset
    if args.limit is not None and shown < listed.total:
        warn(f"showing {len(listed.rows)} of {listed.total}; --offset {shown} for more")
    return 0
