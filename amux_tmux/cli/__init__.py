"""``amux-tmux`` command line: argv in, one manager call, text or JSON out.

Every failure is one line on stderr and an exit code from the CLI contract:
0 ok, 1 operation failed, 2 usage or bad input, 3 not found, 4 busy, 5 tmux unavailable.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, NoReturn

from amux_tmux import __version__, exc
from amux_tmux.cli.output import REDACT, one_line

PROG = "amux-tmux"
log = logging.getLogger("amux_tmux")

#: (name, aliases, one-line help). Each lives in ``amux_tmux.cli.<module>`` with
#: ``create_<name>_subparser``, ``command_<name>`` and ``<Name>Args``; a command's module
#: is imported only when that command runs (or for the full help): hooks call ``mark``.
COMMANDS: list[tuple[str, list[str], str]] = [
    ("start", [], "start an agent (a profile, or a command after --) in a new tmux session"),
    ("list", ["ls"], "list sessions (ended ones with --all, tmux state with --live)"),
    ("show", [], "show one session's record"),
    ("attach", [], "attach this terminal to a session (from inside tmux too)"),
    ("logs", [], "print what a session's agent printed (kept after it ends)"),
    ("send", [], "paste text into a session's agent, then press Enter"),
    ("stop", [], "stop sessions"),
    ("restart", [], "run a session again under the same id"),
    ("recover", [], "restart every orphaned session (after a reboot)"),
    ("rm", [], "remove sessions' records (and their tmux sessions)"),
    ("prune", [], "remove the records of ended sessions"),
    ("rename", [], "give a session another name"),
    ("mark", [], "say what an agent is doing (for the agent's own hooks)"),
    ("wait", [], "wait until a session exits or its agent works, waits or idles"),
    ("reconcile", [], "fix records and tmux sessions that disagree (for cron)"),
    ("completion", [], "print shell completion for bash, zsh or fish"),
]
_MODULES = {"list": "ls"}
#: Global options that take a value (to find the command word without parsing).
_VALUED = frozenset({"--root", "--socket", "--log-level"})


def command_module(name: str) -> ModuleType:
    """Return the module of command ``name`` (imported on first need)."""
    return importlib.import_module(f"amux_tmux.cli.{_MODULES.get(name, name)}")


EPILOG = """examples:
  amux-tmux start claude --name review        # a profile from .amux/config.yaml
  amux-tmux start --name build -- make test   # any command
  amux-tmux ls --live                         # with tmux state and what each agent does
  amux-tmux attach review                     # by name, id, or unique id prefix
  amux-tmux stop review && amux-tmux prune

Exit codes: 0 ok, 1 failed, 2 bad input, 3 not found, 4 busy, 5 tmux unavailable.
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise exc.UsageError(f"{message} (see '{self.prog} --help')")


def _add_globals(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--root",
        default=default,
        help="project root holding .amux/ (env AMUX_ROOT; default: nearest .amux/, else here)",
    )
    parser.add_argument(
        "--socket",
        default=default,
        help="tmux socket name or path (env AMUX_TMUX_SOCKET; default: amux)",
    )
    parser.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS if suppress else False,
        help="print JSON",
    )  # fmt: skip
    # Two options, not one `-v [LEVEL]`: an optional value would swallow the command
    # name in `amux-tmux -v ls` ("invalid choice: 'ls'").
    parser.add_argument(
        "-v", "--verbose", dest="log_level", action="store_const", const="debug",
        default=default, help="log to stderr at debug level; secrets are redacted",
    )  # fmt: skip
    parser.add_argument(
        "--log-level", dest="log_level", default=default, metavar="LEVEL",
        choices=["debug", "info", "warning", "error"],
        help="log to stderr at LEVEL; secrets are redacted",
    )  # fmt: skip


def create_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Return the ``amux-tmux`` argument parser.

    With ``only``, just that command gets its options (the others are listed, with
    their help line, but their modules are not imported).
    """
    parser = _Parser(
        prog=PROG,
        description="Run AI coding agents in tmux sessions you can list, attach to by id, "
        "stop, restart and clean up from cron.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _add_globals(parser, suppress=False)
    common = _Parser(add_help=False)
    _add_globals(common, suppress=True)
    sub = parser.add_subparsers(dest="command_name", metavar="COMMAND", parser_class=_Parser)
    for name, aliases, help_text in COMMANDS:
        child = sub.add_parser(
            name,
            aliases=aliases,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            parents=[common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if only is not None and only != name and only not in aliases:
            continue
        module = command_module(name)
        getattr(module, f"create_{name}_subparser")(child)
        child.set_defaults(
            run=getattr(module, f"command_{name}"),
            namespace=getattr(module, f"{name.title()}Args"),
        )
    return parser


def _command_word(head: Sequence[str]) -> str | None:
    """Return the command named in ``head`` if it is a known one (else None: build all)."""
    skip = False
    for word in head:
        if skip:
            skip = False
        elif word in _VALUED:
            skip = True
        elif not word.startswith("-"):
            known = any(word == name or word in aliases for name, aliases, _ in COMMANDS)
            return word if known else None
    return None


def _split_rest(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """Split off what follows the first ``--``: an agent's argv or literal text."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, None


def _take_extra_words(
    parser: argparse.ArgumentParser, parsed: argparse.Namespace, extra: list[str]
) -> None:
    """Give words argparse left over to the command's word list, if it has one.

    argparse fills a ``nargs="*"`` positional only from its first run of words, so in
    ``send REF --no-enter some text`` the text is left over; a command that takes free
    words names their attribute with ``set_defaults(extra_words=...)``. Anything that
    looks like an option is still an error (literal text goes after ``--``).
    """
    attr = getattr(parsed, "extra_words", None)
    if attr is None or any(w.startswith("-") and w != "-" for w in extra):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    setattr(parsed, attr, [*getattr(parsed, attr), *extra])


def _tolerant_streams() -> None:
    """Print what the terminal's encoding cannot show as escapes, not an error.

    Under ``LANG=C`` without UTF-8 coercion, or ``PYTHONIOENCODING=ascii``, a label such as
    "日本" would otherwise end ``ls`` with UnicodeEncodeError.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and getattr(stream, "errors", "") == "strict":
            with contextlib.suppress(Exception):
                reconfigure(errors="backslashreplace")


def _check_utf8(argv: Sequence[str]) -> None:
    for i, arg in enumerate(argv, 1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            raise exc.UsageError(f"argument {i} is not valid UTF-8") from None


class _Redacting(logging.Filter):
    def __init__(self, redact: Callable[[str], str]) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._redact(record.getMessage())
        record.args = None
        return True


def _setup_logging(level: str | None, redact: Callable[[str], str]) -> logging.Handler | None:
    """Send the package's log to stderr at ``level``; return the handler to remove."""
    if not level:
        return None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_Redacting(redact))
    log.addHandler(handler)
    log.setLevel(level.upper())
    return handler


def _parse(args: list[str]) -> argparse.Namespace | None:
    """Parse a command line; print the help and return None when no command is named."""
    _check_utf8(args)
    head, rest = _split_rest(args)
    parser = create_parser(only=_command_word(head))
    parsed, extra = parser.parse_known_args(head)
    if not hasattr(parsed, "run"):
        if extra or rest:
            parser.error(f"unrecognized arguments: {' '.join([*extra, '--', *(rest or [])])}")
        parser.print_help()
        return None
    if extra:
        _take_extra_words(parser, parsed, extra)
    if rest and not getattr(parsed, "takes_rest", False):
        # `stop a -- b` must not stop a and silently drop b.
        parser.error(f"{parsed.command_name} takes nothing after --: {' '.join(rest)}")
    parsed.rest = rest
    return parsed


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code instead of raising."""
    redact = REDACT
    args_list = list(sys.argv[1:] if argv is None else argv)
    began = time.monotonic()
    handler: logging.Handler | None = None
    code = exc.EXIT_FAILED
    _tolerant_streams()
    try:
        parsed = _parse(args_list)
        if parsed is None:
            code = 0
            return code
        handler = _setup_logging(parsed.log_level, redact)
        log.debug("%s %s (amux-tmux %s, python %s)", PROG, parsed.command_name, __version__,
                  sys.version.split()[0])  # fmt: skip
        namespace = parsed.namespace(**vars(parsed))
        code = int(parsed.run(namespace))
        return code
    except exc.AmuxError as err:
        log.debug("%s: %s", type(err).__name__, err)
        _fail(redact(str(err)))
        code = err.exit_code
        return code
    except KeyboardInterrupt:
        code = 130
        return code
    except BrokenPipeError:
        # `amux-tmux ls | head`: the reader left; nothing more to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
        return code
    except OSError as err:
        _fail(redact(f"{err.strerror or err}" + (f": {err.filename}" if err.filename else "")))
        return exc.EXIT_FAILED
    except Exception as err:  # the contract: never a traceback
        if os.environ.get("AMUX_DEBUG"):
            raise
        _fail(redact(f"internal error: {type(err).__name__}: {err} (AMUX_DEBUG=1 for details)"))
        return exc.EXIT_FAILED
    finally:
        if handler is not None:
            log.debug("exit %d after %.0f ms", code, (time.monotonic() - began) * 1000)
            log.removeHandler(handler)
            log.setLevel(logging.NOTSET)


def _fail(message: str) -> None:
    print(f"{PROG}: error: {one_line(message)}", file=sys.stderr)
