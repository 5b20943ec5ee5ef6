"""Pane launcher: ``python -m amux_tmux.launch [--secrets FIFO] -- CMD...``.

tmux runs this as the pane's command; it ``exec``s the agent, so the pane's pid is the
agent's pid. With ``--secrets`` it first reads the secret environment from a 0600 FIFO
that ``start`` writes to and removes it, so secret values never pass through tmux's
argv, its environment, or the pane's start command. Imports stay minimal: this runs
before every agent.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys

FIFO_WAIT_SECONDS = 15
EXIT_NOT_FOUND = 127
EXIT_CANNOT_EXEC = 126


def _give_up(signum: int, frame: object) -> None:
    raise TimeoutError("no writer opened the secrets FIFO")


def _read_secrets(path: str) -> dict[str, str]:
    # A writer that died before opening the FIFO would block us forever without this.
    signal.signal(signal.SIGALRM, _give_up)
    signal.alarm(FIFO_WAIT_SECONDS)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    finally:
        signal.alarm(0)
    with contextlib.suppress(OSError):
        os.unlink(path)  # the writer removes it too
    chunks = []
    with os.fdopen(fd, "rb") as pipe:
        while chunk := pipe.read(65536):
            chunks.append(chunk)
    data = json.loads(b"".join(chunks) or b"{}")
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ValueError("secret payload is not a map of strings")
    return data


def main(argv: list[str] | None = None) -> int:
    """Read secrets if asked, then replace this process with the agent command."""
    args = list(sys.argv[1:] if argv is None else argv)
    secrets_fifo = None
    if len(args) >= 2 and args[0] == "--secrets":
        secrets_fifo = args[1]
        args = args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print("amux launch: no command given", file=sys.stderr)
        return 2
    env = dict(os.environ)
    if secrets_fifo is not None:
        try:
            env.update(_read_secrets(secrets_fifo))
        except Exception as err:  # any failure: do not start the agent
            print(f"amux launch: could not read secrets: {type(err).__name__}", file=sys.stderr)
            return 1
    try:
        os.execvpe(args[0], args, env)
    except FileNotFoundError:
        print(f"amux launch: command not found: {args[0]}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except OSError as err:
        print(f"amux launch: cannot run {args[0]}: {err.strerror}", file=sys.stderr)
        return EXIT_CANNOT_EXEC
    return 0  # pragma: no cover - execvpe does not return


if __name__ == "__main__":
    sys.exit(main())
