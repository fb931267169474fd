"""One interface to whatever guards a daemon's pidfile.

``DaemonContext(pidfile=...)`` takes a path, a :class:`~daemonkit.PidFile`,
or any foreign pidfile context manager (lockfile's ``PIDLockFile``,
python-daemon's ``TimeoutPIDLockFile``, daemonkit.compat's). The steps see
only this guard and its operations:

``lock()``     in the launcher, before forking: "already running" fails
               there, in the terminal. A foreign manager locks later.
``claim()``    in the daemon, step 8: write our PID (a foreign manager's
               ``__enter__``, which writes getpid()).
``release()``  when the daemon ends, or in a launcher that gives up.
"""

from __future__ import annotations

import os

from .pidfile import PidFile

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class PidGuard:
    def __init__(self, pidfile: Any) -> None:
        if isinstance(pidfile, (str, os.PathLike)):
            pidfile = PidFile(pidfile)
        self.pidfile = pidfile
        self.ours = isinstance(pidfile, PidFile)
        self.claimed = False

    @property
    def path(self) -> str | None:
        path = getattr(self.pidfile, "path", None)
        return os.fspath(path) if path is not None else None

    def lock(self, service_uid: int | None = None) -> None:
        """Take the lock, trusting a directory owned by ``service_uid``, the
        user the daemon becomes, as well as root's (see safedir)."""
        if self.ours:
            self.pidfile.lock(service_uid=service_uid)

    def fds(self) -> list[int]:
        """The fds the guard needs kept open through step 5: ``fds()`` if
        the object has it (ours, compat's), else its ``fileno()``."""
        fds = getattr(self.pidfile, "fds", None)
        if fds is not None:
            return [int(fd) for fd in fds()]
        fileno = getattr(self.pidfile, "fileno", None)
        try:
            return [int(fileno())] if fileno is not None else []
        except (OSError, ValueError, TypeError):
            return []

    def claim(self) -> None:
        if self.ours:
            self.pidfile.write(os.getpid())
        else:
            self.pidfile.__enter__()
        self.claimed = True

    def inherit(self) -> None:
        """Let an exec'ed command inherit the lock, so that it lives exactly
        as long as the command."""
        if self.ours:
            os.set_inheritable(self.pidfile.fileno(), True)

    def release(self) -> None:
        if self.ours:
            self.pidfile.release()
        elif self.claimed:
            self.claimed = False
            self.pidfile.__exit__(None, None, None)

    def remove_if_stale(self) -> None:
        """After a failed start: remove the file the dead daemon left."""
        if self.ours:
            from .pidfile import remove_stale

            remove_stale(self.pidfile.path)
