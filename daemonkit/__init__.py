"""daemonkit: turn a program into a well-behaved Unix daemon.

``with daemonize(pidfile="app.pid"): serve()`` detaches the way daemon(7)
describes, holds a pidfile that cannot go stale, and makes the launcher's
exit status tell the truth about the daemon's startup.

The service-manager side (sd_notify, the watchdog, socket activation,
systemd units) is in :mod:`daemonkit.systemd`.
"""

from __future__ import annotations

# Every module keeps its annotation-only imports behind `TYPE_CHECKING =
# False`, which type checkers treat as True: `typing` alone takes ~9 ms to
# import in a fresh interpreter, and a daemon or `daemonkit start` pays it.
import sys

if sys.platform == "win32":  # pragma: no cover
    raise ImportError("daemonkit needs a POSIX system (fork, setsid, flock); Windows has none")

from .context import DaemonContext, daemon, daemonize, ready
from .control import Status, reload, status, stop
from .errors import (
    AlreadyRunning,
    DaemonError,
    NotifyError,
    PidFileError,
    StartupError,
    StopError,
    UnlockedPidFile,
)
from .foreground import run
from .pidfile import PidFile, is_running, read_pid
from .spawning import spawn

__version__ = "0.1.0"

__all__ = [
    "AlreadyRunning",
    "DaemonContext",
    "DaemonError",
    "NotifyError",
    "PidFile",
    "PidFileError",
    "StartupError",
    "Status",
    "StopError",
    "UnlockedPidFile",
    "daemon",
    "daemonize",
    "is_running",
    "read_pid",
    "ready",
    "reload",
    "run",
    "spawn",
    "status",
    "stop",
]
