"""The exceptions python-daemon and lockfile users catch.

Each subclasses lockfile's class of the same name when lockfile is
installed (so ``except lockfile.AlreadyLocked`` catches it) and a stand-in
with lockfile's hierarchy when it is not. "Already locked" and "timed out"
are also daemonkit's :class:`~daemonkit.errors.AlreadyRunning`, and every
one is a :class:`~daemonkit.errors.DaemonError`, so that an uncaught one
reads as one line in the launcher.
"""

from __future__ import annotations

from ..errors import AlreadyRunning, DaemonError
from . import _lockfile

TYPE_CHECKING = False  # see daemonkit/__init__.py
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "AlreadyLocked",
    "Error",
    "LockError",
    "LockFailed",
    "LockTimeout",
    "NotLocked",
    "NotMyLock",
    "UnlockError",
]


class Error(_lockfile.Error, DaemonError):
    """Base of lockfile's errors."""


class LockError(Error, _lockfile.LockError):
    """Acquiring the lock failed."""


class _Held(LockError, AlreadyRunning):
    """A live process holds the lock: ``path`` and ``pid`` (None if unknown)."""

    def __init__(self, path: str, pid: int | None = None) -> None:
        AlreadyRunning.__init__(self, path, pid)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.pid))


class AlreadyLocked(_Held, _lockfile.AlreadyLocked):
    """Another process holds the lock (and no timeout was given)."""


class LockTimeout(_Held, _lockfile.LockTimeout):
    """The lock was not free within the timeout."""

    def __str__(self) -> str:
        return f"timed out waiting for the lock: {AlreadyRunning.__str__(self)}"


class LockFailed(LockError, _lockfile.LockFailed):
    """The pidfile could not be created or locked (its message says why)."""


class UnlockError(Error, _lockfile.UnlockError):
    """Releasing the lock failed."""


class NotLocked(UnlockError, _lockfile.NotLocked):
    """release() of a lock nobody holds."""


class NotMyLock(UnlockError, _lockfile.NotMyLock):
    """release() of a lock another process holds."""
