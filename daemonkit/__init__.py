"""daemonkit: turn a program into a well-behaved Unix daemon.

``with daemonize(pidfile="app.pid"): serve()`` detaches the way daemon(7)
describes, holds a pidfile that cannot go stale, and makes the launcher's
exit status tell the truth about the daemon's startup.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # pragma: no cover
    raise ImportError("daemonkit needs a POSIX system (fork, setsid, flock); Windows has none")

from .context import DaemonContext, daemon, daemonize, ready
from .errors import AlreadyRunning, DaemonError, PidFileError, StartupError
from .pidfile import PidFile, is_running, read_pid

__version__ = "0.1.0"

__all__ = [
    "AlreadyRunning",
    "DaemonContext",
    "DaemonError",
    "PidFile",
    "PidFileError",
    "StartupError",
    "daemon",
    "daemonize",
    "is_running",
    "read_pid",
    "ready",
]
