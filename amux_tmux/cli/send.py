"""``amux-tmux send``: type text into a running agent."""

from __future__ import annotations

import argparse

from amux_tmux.cli.context import make_manager


def create_send_subparser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``send``'s options to ``parser``."""
    parser.add_argument("ref", help="session id, unique id prefix, or name")
    parser.add_argument("text", nargs="+", help="text to type (words are joined by spaces)")
    parser.add_argument("--no-enter", action="store_true", help="do not press Enter after it")
    return parser


def command_send(args: argparse.Namespace) -> int:
    """Send the text literally, then Enter unless ``--no-enter``."""
    make_manager(args).send(args.ref, " ".join(args.text), enter=not args.no_enter)
    return 0
