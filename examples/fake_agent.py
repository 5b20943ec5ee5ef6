"""A stand-in for an AI coding agent: prints, answers what it is sent, asks to approve.

It reports whether it received an API key (never the key itself), so the demo can show that
secrets reach the agent while staying off disk and out of tmux. A line containing "deploy"
makes it ask "Approve? [y/n]" and wait, like an agent's permission prompt.
"""

from __future__ import annotations

import os
import sys
import time

resumed = "--resumed" in sys.argv[1:]
keys = sorted(name for name in os.environ if name.endswith("_API_KEY"))
print(f"fake agent pid={os.getpid()} cwd={os.getcwd()}", flush=True)
print("resuming the earlier conversation" if resumed else "a new conversation", flush=True)
print(f"api keys received: {', '.join(keys) or 'none'}", flush=True)
for step in range(3):
    print(f"thinking... {step + 1}/3", flush=True)
    time.sleep(0.3)
print("ready (type something; Ctrl-D ends me)", flush=True)
for line in sys.stdin:
    text = line.strip()
    print(f"heard: {text}", flush=True)
    if "deploy" in text:
        print("Approve? [y/n] ", end="", flush=True)
        answer = sys.stdin.readline().strip()
        print(f"approved: {answer == 'y'}", flush=True)
print("stdin closed; idling", flush=True)
while True:
    time.sleep(3600)
