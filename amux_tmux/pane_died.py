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
    from amux_tmux.manager import Manager
    from amux_tmux.store import FileStore
    from amux_tmux.tmux import ROOT_OPTION, TmuxBackend, socket_of_tmux_env

    socket = socket_of_tmux_env(os.environ.get("TMUX"))
    if socket is None:
        return 2
    try:
        facts = TmuxBackend(socket).pane_facts(args[0], ROOT_OPTION)
        if facts is None or not facts[0]:
            return 0
        Manager(FileStore(Path(facts[0])), socket=socket).settle_pane(args[0])
    except exc.AmuxError:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
