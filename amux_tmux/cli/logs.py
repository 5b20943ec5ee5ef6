"""``amux-tmux logs``: what a session's agent printed, kept after it ends."""

from __future__ import annotations

import argparse
import json
import sys

from amux_tmux import exc
from amux_tmux.cli.context import GlobalArgs, make_manager
from amux_tmux.cli.output import print_json

EXAMPLES = """examples:
  amux-tmux logs review -n 50
  amux-tmux logs review -f          # follow until the session ends (Ctrl-C to leave)
  amux-tmux logs review --raw > screen.log   # with terminal escapes
"""


class LogsArgs(GlobalArgs):
    """``logs``'s options."""

    ref: str
    lines: int | None
    follow: bool
    raw: bool


def create_logs_subparser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``logs``'s options to ``parser``."""
    parser.epilog = EXAMPLES
    parser.add_argument("ref", help="session id, unique id prefix, or name")
    parser.add_argument("-n", "--lines", type=int, help="only the last N lines")
    parser.add_argument(
        "-f", "--follow", action="store_true", help="keep printing until the session ends"
    )
    parser.add_argument("--raw", action="store_true", help="keep terminal escape sequences")
    return parser


def command_logs(args: LogsArgs) -> int:
    """Print the log; with ``-f`` follow it (``--json``: one JSON line per line)."""
    if args.lines is not None and args.lines < 0:
        raise exc.UsageError("--lines takes a whole number >= 0")
    manager = make_manager(args)
    if not args.follow:
        text = manager.logs(args.ref, args.lines, args.raw)
        if args.json:
            print_json({"id": manager.resolve(args.ref).id, "lines": text.splitlines()})
        else:
            sys.stdout.write(text)
        return 0

    def emit(line: str) -> None:
        sys.stdout.write((json.dumps({"line": line}) if args.json else line) + "\n")
        sys.stdout.flush()

    try:
        manager.follow(args.ref, emit, args.lines, args.raw)
    except KeyboardInterrupt:
        return 0
    return 0
