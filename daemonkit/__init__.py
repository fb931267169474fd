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
from .errors import AlreadyRunning, DaemonError, NotifyError, PidFileError, StartupError
from .pidfile import PidFile, is_running, read_pid

# `typing` takes ~9 ms to import in a fresh interpreter; every module keeps
# it (and other annotation-only imports) behind this flag, which type
# checkers treat as True.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .control import Status, UnlockedPidFile, reload, status, stop
    from .foreground import run
    from .kill import StopError
    from .spawning import spawn
    from .systemd import (
        listen_fds,
        listen_fds_with_names,
        notify,
        reloading,
        stopping,
        watchdog_interval,
        watchdog_ping,
    )
    from .unit import service_unit

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
    "listen_fds",
    "listen_fds_with_names",
    "notify",
    "read_pid",
    "ready",
    "reload",
    "reloading",
    "run",
    "service_unit",
    "spawn",
    "status",
    "stop",
    "stopping",
    "watchdog_interval",
    "watchdog_ping",
]

# Loaded on first use, to keep `import daemonkit` fast for daemons that
# never start or stop another one.
_LAZY = {
    "Status": "control",
    "reload": "control",
    "status": "control",
    "stop": "control",
    "StopError": "kill",
    "UnlockedPidFile": "control",
    "run": "foreground",
    "spawn": "spawning",
    "service_unit": "unit",
    "listen_fds": "systemd",
    "listen_fds_with_names": "systemd",
    "notify": "systemd",
    "reloading": "systemd",
    "stopping": "systemd",
    "watchdog_interval": "systemd",
    "watchdog_ping": "systemd",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'daemonkit' has no attribute {name!r}")
    # __import__ rather than importlib, whose import would cost more than this.
    value = getattr(__import__(f"{__name__}.{module}", fromlist=[name]), name)
    globals()[name] = value
    return value
