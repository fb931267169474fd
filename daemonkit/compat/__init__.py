"""python-daemon's API (PEP 3143) on top of daemonkit.

Switching is one line::

    from daemonkit import compat as daemon      # was: import daemon
    import daemonkit.compat.pidfile             # was: import daemon.pidfile

``daemon.daemon`` and ``daemon.pidfile`` are here too, as
:mod:`daemonkit.compat.daemon` and :mod:`daemonkit.compat.pidfile`. Every
python-daemon 3.x option keeps its meaning, as a constructor argument or as
an attribute. What changes, and why, is listed in docs/migration.md: the
launcher waits for the daemon and reports its errors, pidfiles are
flock-based and cannot go stale, the default umask is 0o022, and SIGTERM
exits with status 0.
"""

from __future__ import annotations

from . import daemon, pidfile
from .daemon import (
    DaemonContext,
    DaemonError,
    DaemonOSEnvironmentError,
    DaemonProcessDetachError,
)

__all__ = [
    "DaemonContext",
    "DaemonError",
    "DaemonOSEnvironmentError",
    "DaemonProcessDetachError",
    "daemon",
    "pidfile",
]
