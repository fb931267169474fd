"""python-daemon's ``daemon.pidfile`` and lockfile's PIDLockFile API, on
daemonkit's flock pidfile: a ``kill -9`` no longer leaves a pidfile that
blocks the next start.

lockfile's exceptions are mirrored here under the same names; code that
catches ``lockfile.AlreadyLocked`` should catch
``daemonkit.compat.pidfile.AlreadyLocked`` instead.
"""

from __future__ import annotations

import os

from .. import pidfile as _pidfile
from ..errors import AlreadyRunning, PidFileError

TYPE_CHECKING = False  # see daemonkit/__init__.py
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "AlreadyLocked",
    "LockError",
    "LockFailed",
    "LockTimeout",
    "NotLocked",
    "NotMyLock",
    "PIDLockFile",
    "TimeoutPIDLockFile",
]


class LockError(Exception):
    """Base of lockfile's lock errors."""


class AlreadyLocked(LockError):
    """Another process holds the lock (and no timeout was given)."""


class LockTimeout(LockError):
    """The lock was not free within the timeout."""


class LockFailed(LockError):
    """The pidfile could not be created or locked."""


class NotLocked(LockError):
    """release() without holding the lock."""


class NotMyLock(LockError):
    """release() of a lock another process holds."""


class PIDLockFile(_pidfile.PidFile):
    """lockfile's ``PIDLockFile(path, threaded=False, timeout=None)``.

    ``timeout`` None or <= 0 fails at once with AlreadyLocked, as lockfile
    does; a positive timeout waits that long, then raises LockTimeout.
    """

    def __init__(self, path: str, threaded: bool = False, timeout: float | None = None) -> None:
        super().__init__(path)
        self.timeout = timeout

    def _wait(self, timeout: float | None) -> float:
        timeout = self.timeout if timeout is None else timeout
        return timeout if timeout is not None and timeout > 0 else 0

    def lock(self, timeout: float = 0, *, service_uid: int | None = None) -> None:
        """What daemonkit's DaemonContext calls in the launcher: honours the
        configured timeout."""
        super().lock(timeout or self._wait(None), service_uid=service_uid)

    def acquire(self, timeout: float | None = None) -> None:
        wait = self._wait(timeout)
        try:
            super().acquire(wait)
        except AlreadyRunning as exc:
            if wait:
                raise LockTimeout(f"Timeout waiting to acquire lock for {self.path}") from exc
            raise AlreadyLocked(f"{self.path} is already locked") from exc
        except PidFileError as exc:
            raise LockFailed(f"failed to create {self.path}: {exc.reason}") from exc

    def release(self) -> None:
        if not self.is_locked():
            raise NotLocked(f"{self.path} is not locked")
        if not self.i_am_locking():
            raise NotMyLock(f"{self.path} is locked, but not by me")
        super().release()

    def is_locked(self) -> bool:  # type: ignore[override]
        """Whether any live process holds the lock (lockfile: the file exists)."""
        return self.fd is not None or _pidfile.is_running(self.path) is not None

    def i_am_locking(self) -> bool:
        return self.fd is not None and self.pid == os.getpid()

    def read_pid(self) -> int | None:
        return _pidfile.read_pid(self.path)

    def break_lock(self) -> None:
        """Remove the pidfile if nobody holds it (a live holder keeps it)."""
        _pidfile.remove_stale(self.path)

    def __enter__(self) -> PIDLockFile:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.i_am_locking():
            super().release()


class TimeoutPIDLockFile(PIDLockFile):
    """python-daemon's ``TimeoutPIDLockFile(path, acquire_timeout=None)``."""

    def __init__(self, path: str, acquire_timeout: float | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(path, *args, **kwargs)
        self.acquire_timeout = acquire_timeout

    def _wait(self, timeout: float | None) -> float:
        return super()._wait(self.acquire_timeout if timeout is None else timeout)
