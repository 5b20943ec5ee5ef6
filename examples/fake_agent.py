"""A stand-in for an AI coding agent: prints, echoes what it is sent, then waits.

It reports whether it received an API key (never the key itself), so the demo can show that
secrets reach the agent while staying off disk and out of tmux.
"""

from __future__ import annotations

import os
import sys
import time

keys = sorted(name for name in os.environ if name.endswith("_API_KEY"))
print(f"fake agent pid={os.getpid()} cwd={os.getcwd()}", flush=True)
print(f"api keys received: {', '.join(keys) or 'none'}", flush=True)
print("working... (type something; Ctrl-D ends me)", flush=True)
for line in sys.stdin:
    print(f"heard: {line.strip()}", flush=True)
print("stdin closed; idling", flush=True)
while True:
    time.sleep(3600)
