"""Facts about processes that tmux does not always report."""

from __future__ import annotations


def zombie_exit(pid: int) -> tuple[int | None, int | None] | None:
    """Return ``(exit status, signal)`` of an exited but unreaped process, else ``None``.

    tmux marks a pane dead when its pty closes but learns the exit status only when it
    reaps the child, and tmux 3.3a has been seen here never to reap some (the agent stays
    a zombie for minutes). Linux keeps a zombie's wait status in ``/proc/PID/stat``
    (field 52, since 3.5), so the exit can still be known.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    # fields[0] is field 3 (state); the exit code is field 52.
    if len(fields) < 50 or fields[0] != b"Z":
        return None
    try:
        status = int(fields[49])
    except ValueError:
        return None
    if status & 0x7F == 0:
        return (status >> 8) & 0xFF, None
    return None, status & 0x7F
