"""Facts about processes that tmux does not always report."""

from __future__ import annotations

import os


def zombie_exit(pid: int) -> tuple[int | None, int | None] | None:
    """Return ``(exit status, signal)`` of an exited but unreaped process, else ``None``.

    tmux marks a pane dead when its pty closes but learns the exit status only when it
    reaps the child, and tmux 3.3a has been seen here never to reap some (the agent stays
    a zombie for minutes). Linux keeps a zombie's wait status in ``/proc/PID/stat``
    (field 52, since 3.5), so the exit can still be known.
    """
    try:
        fields = _stat_fields(pid)
    except OSError:
        return None
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


def _stat_fields(pid: int) -> list[bytes]:
    """Return fields 3 onwards of ``/proc/PID/stat``: after the command name, which may
    itself hold spaces and parentheses."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    return data[data.rfind(b")") + 2 :].split()


_boot_time: float | None = None


def create_time(pid: int) -> float | None:
    """Return when process ``pid`` started (epoch seconds), or ``None`` if there is none.

    The value is psutil's ``Process.create_time()``, which guards against pid reuse. On
    Linux it is read from ``/proc`` directly, the way psutil computes it, because
    ``reconcile`` asks for hundreds of pids and importing psutil alone costs ~30 ms.
    """
    global _boot_time  # noqa: PLW0603 - a per-process constant, read once
    try:
        start_ticks = int(_stat_fields(pid)[19])  # field 22
        if _boot_time is None:
            with open("/proc/stat", "rb") as f:
                btime = next(line for line in f if line.startswith(b"btime"))
            _boot_time = float(btime.split()[1])
        return round(_boot_time + start_ticks / _clock_ticks(), 2)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, IndexError, StopIteration):
        return _psutil_create_time(pid)


def _clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def _psutil_create_time(pid: int) -> float | None:
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None
