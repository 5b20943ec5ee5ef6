"""What tmux's ``pipe-pane`` runs for each session: ``python -m amux_tmux.logpipe %PANE``.

tmux gives this program the pane's output on stdin and nothing else: no ``$TMUX``, and
no path in its command line (a path spliced into a shell string would be code). So it
finds its server as its parent's listening socket, asks tmux which store owns the pane
(the session options ``@amux_root``, ``@amux_store``, ``@amux_id``), checks that the
store agrees, and then replaces itself with the small standard-library loop of
:func:`amux_tmux.logfile.write`, which appends to ``.amux/logs/<id>.log``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path


def log_target(pane_id: str) -> Path | None:
    """Return the log path for the session of ``pane_id`` if a store owns it, else None."""
    from amux_tmux import procs
    from amux_tmux.model import is_valid_id, tmux_session_name
    from amux_tmux.store import FileStore
    from amux_tmux.tmux import OWNER_OPTION, ROOT_OPTION, STORE_OPTION, TmuxBackend

    socket = procs.server_socket(os.getppid())
    if socket is None:
        return None
    facts = TmuxBackend(socket).pane_facts(
        pane_id, OWNER_OPTION, STORE_OPTION, "session_name", ROOT_OPTION
    )
    if facts is None:
        return None
    sid, store_id, name, root = facts
    if not is_valid_id(sid) or name != tmux_session_name(sid) or not root:
        return None
    store = FileStore(Path(root))
    if store.store_id is None or store.store_id != store_id:
        return None
    path = store.log_path(sid)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Find the log of the pane named in ``argv`` and become the loop that writes it."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        return 2
    try:
        path = log_target(args[0])
    except Exception:  # no log is better than a traceback into tmux
        path = None
    if path is None:
        return 1  # tmux closes the pipe; the pane is not affected
    from amux_tmux import logfile

    os.execv(
        sys.executable,
        [
            sys.executable,
            "-I",
            "-S",
            logfile.__file__,
            "--write",
            str(path),
            str(logfile.MAX_LOG_BYTES),
        ],
    )
    return 0  # pragma: no cover - execv does not return


if __name__ == "__main__":
    sys.exit(main())
