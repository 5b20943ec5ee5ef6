"""What tmux's ``pipe-pane`` runs for each session: ``python -m amux_tmux.logpipe ID HEX``.

tmux gives this program the pane's output on stdin and nothing else: no ``$TMUX``, and
no path in its command line as text (a path spliced into a shell string would be code).
So the session's id and its project root, hex-encoded, are its arguments: words of
letters and digits that neither tmux nor ``sh`` read anything into. Reading them from
the pane's process would lose the output of an agent that exits before this program
has started. The session's record must exist under that root. Then the loop of
:func:`amux_tmux.logfile.write` appends to ``.amux/logs/<id>.log``.

One of these runs beside every agent for its whole life, and it starts while ``start``
waits for the launcher: it imports nothing but the standard library and
:mod:`amux_tmux.logfile`.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from amux_tmux import logfile

_ID = re.compile(r"[a-z0-9][a-z0-9-]{2,63}")


def log_target(sid: str, hexroot: str) -> Path | None:
    """Return the log of session ``sid`` under the hex-encoded root, if its record exists.

    >>> log_target("abc", "not hex") is None
    True
    """
    if _ID.fullmatch(sid) is None:
        return None
    try:
        root = bytes.fromhex(hexroot).decode("utf-8", "surrogateescape")
    except ValueError:
        return None
    if not os.path.isabs(root):
        return None
    path = logfile.log_path(Path(root), sid)
    record = path.parent.parent / "sessions" / f"session-{sid}.yaml"
    if not record.is_file():
        return None
    path.parent.mkdir(mode=0o700, exist_ok=True)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Append the pane's output to its session's log until the pane closes the pipe."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        return 2
    try:
        path = log_target(*args)
        if path is None:
            return 1  # tmux closes the pipe; the pane is not affected
        return logfile.write(str(path), logfile.MAX_LOG_BYTES)
    except OSError:  # no log is better than a traceback into tmux
        return 1


if __name__ == "__main__":
    sys.exit(main())
