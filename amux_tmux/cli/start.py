"""``amux-tmux start``: run an agent command in a new tmux session."""

from __future__ import annotations

import argparse
import os

from amux_tmux import exc
from amux_tmux.cli import attach as attach_cmd
from amux_tmux.cli.context import make_manager
from amux_tmux.cli.output import print_json, record_json
from amux_tmux.manager import Observed, StartSpec


def create_start_subparser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``start``'s options to ``parser``."""
    parser.add_argument("--name", help="a name to refer to the session by (unique among live)")
    parser.add_argument("--agent", dest="agent_id", help="agent id, e.g. claude")
    parser.add_argument("--workspace", dest="workspace_id", help="workspace id")
    parser.add_argument("--cwd", help="working directory of the agent (default: here)")
    parser.add_argument(
        "-e",
        "--env",
        action="append",
        default=[],
        metavar="KEY[=VAL]",
        help="environment for the agent; KEY alone copies it from this shell. "
        "Secret values reach only the agent, never tmux, disk or output.",
    )
    parser.add_argument("--attach", action="store_true", help="attach once started")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the agent command")
    return parser


def parse_env(items: list[str], environ: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    """Turn ``-e`` items into a mapping; ``KEY`` alone takes the caller's value."""
    env: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            if key not in environ:
                raise exc.UsageError(f"-e {key}: not set in this environment")
            value = environ[key]
        env[key] = value
    return env


def command_start(args: argparse.Namespace) -> int:
    """Start the session and print its id (or its record with ``--json``)."""
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    spec = StartSpec(
        command=command,
        name=args.name,
        agent_id=args.agent_id,
        workspace_id=args.workspace_id,
        cwd=args.cwd,
        environment=parse_env(args.env, os.environ),
    )
    manager = make_manager(args)
    session = manager.start(spec)
    if args.json:
        print_json(record_json(Observed(session)))
    else:
        print(session.id)
    if args.attach:
        return attach_cmd.attach_to(manager, session.id)
    return 0
