"""What tmux's ``pane-died`` hook runs: ``python -m amux_tmux.pane_died %PANE``.

The hook's shell command holds no path (a path spliced into it would be code); tmux
sets ``$TMUX`` for ``run-shell``, which names the server, and the session option
``@amux_root`` names the store. The exit is then recorded the way any command that
looks at a session records it, under the record's lock, so ``ls`` tells the truth
without asking tmux.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    """Settle the record of the session whose pane just died."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        return 2
    from amux_tmux import exc
    from amux_tmux.manager import START_TIMEOUT, Manager
    from amux_tmux.model import is_valid_id
    from amux_tmux.store import FileStore
    from amux_tmux.tmux import (
        OWNER_OPTION,
        ROOT_OPTION,
        STORE_OPTION,
        TmuxBackend,
        socket_of_tmux_env,
    )

    socket = socket_of_tmux_env(os.environ.get("TMUX"))
    if socket is None:
        return 2
    try:
        facts = TmuxBackend(socket).pane_facts(args[0], OWNER_OPTION, STORE_OPTION, ROOT_OPTION)
        if facts is None:
            return 0
        sid, store_id, root = facts
        if not root or not is_valid_id(sid):
            return 0
        store = FileStore(Path(root))
        if store.store_id is None or store.store_id != store_id:
            return 0  # not a store's session: touch nothing (and create nothing)
        # An agent may die while its start still writes the record (a slow disk): the
        # start holds the record's lock until ``running`` is written, so wait for it
        # here rather than give up while the record still says ``starting``.
        with store.lock(sid, timeout=START_TIMEOUT):
            pass
        Manager(store, socket=socket).settle_pane(args[0])
    except exc.AmuxError:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
