"""``amux-tmux start``: run an agent (a profile, or a command) in a new tmux session."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
from collections.abc import Mapping

from amux_tmux import exc
from amux_tmux.cli import attach as attach_cmd
from amux_tmux.cli.context import GlobalArgs, make_manager
from amux_tmux.cli.output import REDACT, print_json, record_json
from amux_tmux.manager import Observed, StartSpec

log = logging.getLogger(__name__)

EXAMPLES = """examples:
  amux-tmux start claude                          # the 'claude' profile (.amux/config.yaml)
  amux-tmux start claude --name review -- --model opus   # profile, plus arguments
  amux-tmux start --name build -- make -j8 test   # any command after --
  amux-tmux start -e ANTHROPIC_API_KEY -- claude  # copy a variable from this shell
  amux-tmux start --secret DB_URL -- ./agent.sh   # masked everywhere, whatever it looks like
"""


class StartArgs(GlobalArgs):
    """``start``'s options."""

    agent: str | None
    name: str | None
    agent_id: str | None
    workspace_id: str | None
    cwd: str | None
    env: list[str]
    secret: list[str]
    attach: bool
    attach_in: str
    rest: list[str] | None


def create_start_subparser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``start``'s options to ``parser``."""
    parser.usage = "%(prog)s [AGENT] [options] [-- COMMAND...]"
    parser.epilog = EXAMPLES
    parser.add_argument("agent", nargs="?", help="an agent profile (see .amux/config.yaml)")
    parser.set_defaults(takes_rest=True)  # what follows --
    parser.add_argument("--name", help="a name to refer to the session by (unique among live)")
    parser.add_argument("--agent", dest="agent_id", help="an agent label, e.g. claude")
    parser.add_argument("--workspace", dest="workspace_id", help="a workspace label")
    parser.add_argument("--cwd", help="working directory of the agent (default: here)")
    parser.add_argument(
        "-e", "--env", action="append", default=[], metavar="KEY[=VAL]",
        help="set a variable for the agent; KEY alone copies it from this shell",
    )  # fmt: skip
    parser.add_argument(
        "--secret", action="append", default=[], metavar="KEY[=VAL]",
        help="like -e, and always masked (record, output, logs), whatever it looks like",
    )  # fmt: skip
    parser.add_argument("--attach", action="store_true", help="attach once started")
    parser.add_argument(
        "--in", dest="attach_in", choices=["popup", "window"], default="popup",
        help="inside another tmux, open the session in a popup (default) or a new window",
    )  # fmt: skip
    return parser


def parse_env(items: list[str], environ: Mapping[str, str]) -> dict[str, str]:
    """Turn ``-e`` items into a mapping; ``KEY`` alone takes the caller's value."""
    env: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            if key not in environ:
                raise exc.UsageError(f"-e {key[:40]} is not set in this environment")
            value = environ[key]
        env[key] = value
    return env


def command_start(args: StartArgs) -> int:
    """Start the session and print its id (or its record with ``--json``)."""
    caller = dict(os.environ)
    env = parse_env(args.env, caller)
    secrets = parse_env(args.secret, caller)
    for value in secrets.values():
        REDACT.add(value)
    env.update(secrets)
    manager = make_manager(args)
    agent = args.agent
    if agent is None and args.rest is None and args.agent_id is not None:
        # `start --agent claude` with no command: the label names a profile.
        agent = args.agent_id if args.agent_id in manager.config.agents else None
    if agent is None and not args.rest:
        raise exc.UsageError("name an agent profile, or give a command after '--'")
    spec = StartSpec(
        command=args.rest or [],
        agent=agent,
        name=args.name,
        agent_id=args.agent_id,
        workspace_id=args.workspace_id,
        cwd=args.cwd,
        environment=env,
        secrets=list(secrets),
        caller_environment=caller,
    )
    session = manager.start(spec)
    # The record's command and environment are masked already; the handler redacts too.
    log.info("started %s in %s: %s", session.id, session.cwd, shlex.join(session.command))
    log.debug("environment set: %s", " ".join(f"{k}={v}" for k, v in session.environment.items()))
    if args.json:
        print_json(record_json(Observed(session)))
    else:
        print(session.id)
    if args.attach:
        return attach_cmd.attach_to(manager, session.id, args.attach_in)
    return 0
