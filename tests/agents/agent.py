"""An agent-like program for tests: it reports what it got, and acts like agents act.

Usage: agent.py [--argv] [--cwd] [--env NAME]... [--show-env NAME]... [--print TEXT]...
                [--redraw N] [--busy SECONDS] [--prompt TEXT] [--bracketed]
                [--exit CODE [--linger SECONDS]] [--sleep SECONDS]

Reports go to stdout (the pane, and so the log), one line each, in the order above:
``argv <json>``, ``cwd <json>``, ``env NAME present=... len=...`` (a fingerprint, so a
secret never reaches the pane), ``show NAME <json value>``. Then ``--redraw`` rewrites
one line in place N times, ``--busy`` prints a dot every 0.2 s for that long, and
``--prompt`` shows TEXT and answers each line typed with ``got <json>``. With
``--bracketed`` the terminal is put in raw mode with bracketed paste on, and each
paste is reported as ``paste <json>``, each Enter as ``enter``. ``--exit`` waits
``--linger`` seconds first (default 0.3): a non-zero exit before ``start`` has returned
is ``start``'s failure, and tests of a running start must not race it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--argv", action="store_true")
parser.add_argument("--cwd", action="store_true")
parser.add_argument("--env", action="append", default=[])
parser.add_argument("--show-env", action="append", default=[])
parser.add_argument("--print", action="append", default=[], dest="lines")
parser.add_argument("--redraw", type=int, default=0)
parser.add_argument("--busy", type=float, default=0.0)
parser.add_argument("--prompt")
parser.add_argument("--bracketed", action="store_true")
parser.add_argument("--exit", type=int, default=None)
parser.add_argument("--linger", type=float, default=0.3)
parser.add_argument("--sleep", type=float, default=600.0)
args, extra = parser.parse_known_args()


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


say(f"agent ready pid={os.getpid()}")
if args.argv:
    say(f"argv {json.dumps(sys.argv[1:])}")
if args.cwd:
    say(f"cwd {json.dumps(os.getcwd())}")
for name in args.env:
    value = os.environ.get(name)
    say(f"env {name} present={value is not None} len={len(value or '')}")
for name in args.show_env:
    say(f"show {name} {json.dumps(os.environ.get(name))}")
for line in args.lines:
    say(line)
for i in range(args.redraw):
    sys.stdout.write(f"\r\x1b[2Kframe {i}")
    sys.stdout.flush()
    time.sleep(0.02)
if args.redraw:
    say("")
deadline = time.monotonic() + args.busy
while time.monotonic() < deadline:
    sys.stdout.write(".")
    sys.stdout.flush()
    time.sleep(0.2)
if args.busy:
    say("")


def bracketed() -> None:
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    sys.stdout.write("\x1b[?2004h" + (args.prompt or "> "))
    sys.stdout.flush()
    buffer = b""
    try:
        while True:
            chunk = os.read(fd, 4096)
            if not chunk:
                return
            buffer += chunk
            while buffer:
                if buffer.startswith(b"\x1b[200~"):
                    end = buffer.find(b"\x1b[201~")
                    if end < 0:
                        break
                    text = buffer[6:end].decode("utf-8", "replace")
                    sys.stdout.write(f"\r\npaste {json.dumps(text)}\r\n")
                    buffer = buffer[end + 6 :]
                elif buffer[:1] in (b"\r", b"\n"):
                    sys.stdout.write("\r\nenter\r\n")
                    buffer = buffer[1:]
                elif buffer[:1] == b"\x1b" and len(buffer) < 6 and b"\x1b[200~".startswith(buffer):
                    break
                else:
                    sys.stdout.write(f"\r\nkey {json.dumps(buffer[:1].decode('latin-1'))}\r\n")
                    buffer = buffer[1:]
            sys.stdout.flush()
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


if args.bracketed:
    bracketed()
elif args.prompt is not None:
    while True:
        sys.stdout.write(args.prompt)
        sys.stdout.flush()
        got = sys.stdin.readline()
        if not got:
            break
        say(f"got {json.dumps(got.rstrip(chr(10)))}")
if args.exit is not None:
    time.sleep(args.linger)
    sys.exit(args.exit)
time.sleep(args.sleep)
