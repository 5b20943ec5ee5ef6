"""An agent-like program for tests: prints, reports secrets it can see, waits or exits.

Usage: agent.py [--exit CODE] [--env NAME]... [--sleep SECONDS]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--exit", type=int, default=None)
parser.add_argument("--env", action="append", default=[])
parser.add_argument("--sleep", type=float, default=600.0)
args = parser.parse_args()
print(f"agent ready pid={os.getpid()}", flush=True)
for name in args.env:
    # Print a fingerprint only: the test checks the value arrived without the value
    # itself ever reaching the pane (and so `logs`).
    value = os.environ.get(name)
    print(f"env {name} present={value is not None} len={len(value or '')}", flush=True)
if args.exit is not None:
    sys.exit(args.exit)
time.sleep(args.sleep)
