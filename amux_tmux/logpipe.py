"""What tmux's ``pipe-pane`` runs for each session: ``python -m amux_tmux.logpipe PID``.

tmux gives this program the pane's output on stdin and nothing else: no ``$TMUX``, and
no path in its command line (a path spliced into a shell string would be code); only
``#{pane_pid}``, a number. The pane's process (the launcher, then the agent it became)
carries ``AMUX_ROOT`` and ``AMUX_SESSION_ID`` in its environment, which says where the
log goes; the session's record must exist there. Then the loop of
:func:`amux_tmux.logfile.write` appends to ``.amux/logs/<id>.log``.

One of these runs beside every agent for its whole life, and it starts while ``start``
waits for the launcher: it imports nothing but the standard library and
:mod:`amux_tmux.logfile`.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from amux_tmux import logfile

_ID = re.compile(r"[a-z0-9][a-z0-9-]{2,63}")


def pane_environ(pid: int) -> Mapping[str, str]:
    """Return the environment of process ``pid`` (empty if it cannot be read)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return _environ_by_psutil(pid)
    pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
    return {k.decode("utf-8", "surrogateescape"): v.decode("utf-8", "surrogateescape")
            for k, _, v in pairs}  # fmt: skip


def _environ_by_psutil(pid: int) -> Mapping[str, str]:
    # Without /proc (macOS), psutil knows how.
    try:
        import psutil

        return dict(psutil.Process(pid).environ())
    except Exception:
        return {}


def log_target(pid: int) -> Path | None:
    """Return the log of the session whose pane runs ``pid``, if its record exists."""
    env = pane_environ(pid)
    root, sid = env.get("AMUX_ROOT"), env.get("AMUX_SESSION_ID")
    if not root or not sid or _ID.fullmatch(sid) is None or not os.path.isabs(root):
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
    if len(args) != 1 or not args[0].isdigit():
        return 2
    try:
        path = log_target(int(args[0]))
        if path is None:
            return 1  # tmux closes the pipe; the pane is not affected
        return logfile.write(str(path), logfile.MAX_LOG_BYTES)
    except OSError:  # no log is better than a traceback into tmux
        return 1


if __name__ == "__main__":
    sys.exit(main())
