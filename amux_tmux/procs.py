"""Facts about processes, from psutil (imported on first use: ``ls`` never needs it)."""

from __future__ import annotations

import signal
import time

from amux_tmux.model import ProcessFacts

#: ``__SO_ACCEPTCON`` in the flags of ``/proc/net/unix``: a listening socket.
_ACCEPTING = 0x10000


def load() -> None:
    """Import psutil now (a caller with a wait ahead can pay for it meanwhile)."""
    import psutil  # noqa: F401


def facts(pid: int) -> ProcessFacts:
    """Return whether ``pid`` exists, when it started, and whether it is a zombie."""
    import psutil

    try:
        proc = psutil.Process(pid)
        return ProcessFacts(proc.create_time(), proc.status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return ProcessFacts(None)
    except psutil.Error:
        # Someone else's process holds the pid (access denied): it is not our agent.
        return ProcessFacts(-1.0)


def create_time(pid: int) -> float | None:
    """Return when process ``pid`` started (epoch seconds, as psutil says), or ``None``."""
    return facts(pid).create_time


def zombie_exit(pid: int) -> tuple[int | None, int | None] | None:
    """Return ``(exit status, signal)`` of an exited but unreaped process, else ``None``.

    psutil cannot tell this: a zombie's exit status is only known to the parent that
    reaps it. tmux marks a pane dead when its pty closes but learns the exit status only
    when it reaps the child, and tmux 3.3a has been seen here not to reap some for
    minutes. Linux keeps a zombie's wait status in ``/proc/PID/stat`` (field 52, since
    3.5), so the exit can still be known.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # Fields after the command name, which may itself hold spaces and parentheses;
    # fields[0] is field 3 (state), the exit code is field 52.
    fields = data[data.rfind(b")") + 2 :].split()
    if len(fields) < 50 or fields[0] != b"Z":
        return None
    try:
        status = int(fields[49])
    except ValueError:
        return None
    if status & 0x7F == 0:
        return (status >> 8) & 0xFF, None
    return None, status & 0x7F


def terminate(pid: int, started: float | None, timeout: float) -> None:
    """SIGTERM ``pid`` if it is still the process that started at ``started``; wait.

    Not our child, so ``wait`` cannot reap it: poll until it is gone or a zombie (tmux,
    its parent, may be slow to reap it, or never do).
    """
    import psutil

    try:
        proc = psutil.Process(pid)
        if started is not None and abs(proc.create_time() - started) > 1.0:
            return  # the pid now belongs to someone else
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        delay = 0.002
        while proc.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
    except psutil.Error:
        pass  # gone; or kill-session follows and sends SIGHUP


def parent_of(pid: int) -> int | None:
    """Return the parent pid of ``pid`` (an agent's parent is its tmux server)."""
    import psutil

    try:
        return psutil.Process(pid).ppid() or None
    except psutil.Error:
        return None
