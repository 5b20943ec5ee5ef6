"""``amux-tmux send``: paste text into a running agent, then press Enter."""

from __future__ import annotations

import argparse
import math
import sys

from amux_tmux import exc
from amux_tmux.cli.context import GlobalArgs, make_manager
from amux_tmux.cli.output import print_json
from amux_tmux.manager import DEFAULT_SEND_SETTLE

EXAMPLES = """examples:
  amux-tmux send review "run the tests and fix what fails"
  amux-tmux send review --file prompt.md      # a multi-line prompt arrives as one message
  git diff | amux-tmux send review -          # from stdin
  amux-tmux send review -- "--not an option"  # text after -- is taken literally
"""
MAX_SEND_BYTES = 1024 * 1024


class SendArgs(GlobalArgs):
    """``send``'s options."""

    ref: str
    text: list[str]
    file: str | None
    no_enter: bool
    settle: float
    rest: list[str] | None


def create_send_subparser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``send``'s options to ``parser``."""
    parser.usage = "%(prog)s REF [TEXT... | --file F | -] [options] [-- TEXT...]"
    parser.epilog = EXAMPLES
    parser.add_argument("ref", help="session id, unique id prefix, or name")
    parser.add_argument(
        "text", nargs="*", help="text to send (words joined by spaces); - reads stdin"
    )
    parser.set_defaults(extra_words="text")  # `send REF --no-enter some text`
    parser.set_defaults(takes_rest=True)  # what follows --
    parser.add_argument("--file", help="send this file's text ('-' for stdin)")
    parser.add_argument("--no-enter", action="store_true", help="do not press Enter after it")
    parser.add_argument(
        "--settle", type=float, default=DEFAULT_SEND_SETTLE,
        help="seconds between the text and Enter (default %(default)s)",
    )  # fmt: skip
    return parser


def _read(source: str) -> str:
    if source == "-":
        if sys.stdin is None:
            raise exc.UsageError("cannot read the text from stdin: it is closed")
        data = sys.stdin.buffer.read(MAX_SEND_BYTES + 1)
    else:
        try:
            with open(source, "rb") as f:
                data = f.read(MAX_SEND_BYTES + 1)
        except OSError as err:
            raise exc.UsageError(f"cannot read {source}: {err.strerror}") from None
    if len(data) > MAX_SEND_BYTES:
        raise exc.UsageError(f"text is over {MAX_SEND_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise exc.UsageError("text is not valid UTF-8") from None
    # A file's last line break ends the file, not the message: Enter comes after it.
    return text.removesuffix("\n").removesuffix("\r")


def command_send(args: SendArgs) -> int:
    """Send the text, then Enter unless ``--no-enter``."""
    if not math.isfinite(args.settle) or args.settle < 0:
        raise exc.UsageError("--settle takes seconds >= 0")
    words = [*args.text, *(args.rest or [])]
    if args.file is not None:
        if words:
            raise exc.UsageError("give the text as arguments or with --file, not both")
        text = _read(args.file)
    elif words == ["-"] and args.rest is None:
        text = _read("-")
    else:
        text = " ".join(words)
    session = make_manager(args).send(args.ref, text, enter=not args.no_enter, settle=args.settle)
    if args.json:
        print_json({"id": session.id, "sent": len(text), "enter": not args.no_enter})
    return 0
