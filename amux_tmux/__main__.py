"""``python -m amux_tmux``."""

from __future__ import annotations

import sys

from amux_tmux.cli import main

if __name__ == "__main__":
    sys.exit(main())
