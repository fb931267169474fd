"""Pidfiles written by lockfile and python-daemon: no lock, only a PID.

Such a file holds no flock, so daemonkit's own rule (liveness is the lock)
would call it stale, and during a migration a second instance would start
beside the old one. For compat, an unlocked pidfile still counts as held
when the PID it names is alive and started before the file was written:
only the writer can be that process, because no other live process can
have had that PID then. A PID that was reused later, after the writer
died, started after the file's mtime and does not count.
"""

from __future__ import annotations

import os

from ..errors import PidFileError
from ..pidfile import read_pid

# /proc/stat's btime has whole seconds, a process's start tick 1/CLK_TCK:
# the start time is known to within a second, and the doubt counts as
# "started before", so that a live writer is never missed.
_SLACK = 1.0


def live_writer(path: str) -> int | None:
    """The PID in the unlocked pidfile ``path`` if its writer still runs."""
    try:
        written = os.stat(path, follow_symlinks=False).st_mtime
        pid = read_pid(path)
    except (OSError, PidFileError):
        return None  # missing, unreadable or garbage: names nobody
    if pid is None or pid == os.getpid():
        return None
    started = start_time(pid)
    if started is None:
        return None
    return pid if started <= written + _SLACK else None


def start_time(pid: int) -> float | None:
    """When ``pid`` started (seconds since the epoch); None if it is dead
    or a zombie. Without /proc, 0.0 for any process kill(pid, 0) finds."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        with open("/proc/stat", "rb") as f:
            boot = next(float(line.split()[1]) for line in f if line.startswith(b"btime "))
    except FileNotFoundError:
        return None if os.path.isdir("/proc/self") else _start_without_proc(pid)
    except (OSError, IndexError, StopIteration, ValueError):
        return None
    if fields[0] in (b"Z", b"X"):  # zombie: dead, only not yet reaped
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def _start_without_proc(pid: int) -> float | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    return 0.0
