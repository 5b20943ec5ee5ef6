"""``amux-tmux`` command line: argv in, calls to the manager, text or JSON out.

Every failure is one line on stderr and an exit code from the CLI contract:
0 ok, 1 operation failed, 2 usage or bad input, 3 not found, 4 busy, 5 tmux unavailable.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from amux_tmux import __version__, exc
from amux_tmux.cli import attach, logs, ls, reconcile, rm, send, show, start, stop
from amux_tmux.secrets import Redactor

PROG = "amux-tmux"

_COMMANDS: list[
    tuple[
        str,
        list[str],
        str,
        Callable[[argparse.ArgumentParser], argparse.ArgumentParser],
        Callable[[argparse.Namespace], int],
    ]
] = [
    ("start", [], "start an agent command in a new tmux session",
     start.create_start_subparser, start.command_start),
    ("list", ["ls"], "list sessions (ended ones with --all)",
     ls.create_ls_subparser, ls.command_ls),
    ("show", [], "show one session's record", show.create_show_subparser, show.command_show),
    ("attach", [], "attach this terminal to a session",
     attach.create_attach_subparser, attach.command_attach),
    ("stop", [], "stop a session", stop.create_stop_subparser, stop.command_stop),
    ("rm", [], "remove a session's record", rm.create_rm_subparser, rm.command_rm),
    ("logs", [], "print what a session's pane shows", logs.create_logs_subparser,
     logs.command_logs),
    ("send", [], "type text into a session", send.create_send_subparser, send.command_send),
    ("reconcile", [], "fix records and tmux sessions that disagree (for cron)",
     reconcile.create_reconcile_subparser, reconcile.command_reconcile),
]  # fmt: skip


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise exc.UsageError(f"{message} (see '{self.prog} --help')")


def create_parser() -> argparse.ArgumentParser:
    """Return the full ``amux-tmux`` argument parser."""
    parser = _Parser(prog=PROG, description="Run AI coding agents in tmux sessions.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument(
        "--root", help="project root holding .amux/ (env AMUX_ROOT; default: nearest .amux/)"
    )
    parser.add_argument(
        "--socket", help="tmux socket name or path (env AMUX_TMUX_SOCKET; default: amux)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    common = _Parser(add_help=False)
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON"
    )
    sub = parser.add_subparsers(dest="command_name", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, aliases, help_text, build, run in _COMMANDS:
        child = sub.add_parser(name, aliases=aliases, help=help_text, parents=[common])
        build(child)
        child.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code instead of raising."""
    redact = Redactor()
    try:
        args = create_parser().parse_args(argv)
        return int(args.run(args))
    except exc.AmuxError as err:
        _fail(redact(str(err)))
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `amux-tmux ls | head`: the reader left; nothing more to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:
        _fail(redact(f"{err.strerror or err}" + (f": {err.filename}" if err.filename else "")))
        return exc.EXIT_FAILED
    except Exception as err:  # the contract: never a traceback
        if os.environ.get("AMUX_DEBUG"):
            raise
        _fail(redact(f"internal error: {type(err).__name__}: {err} (AMUX_DEBUG=1 for details)"))
        return exc.EXIT_FAILED


def _fail(message: str) -> None:
    line = " ".join(message.split())
    print(f"{PROG}: error: {line}", file=sys.stderr)
