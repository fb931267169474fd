"""python-daemon's ``daemon.pidfile`` and lockfile's ``PIDLockFile`` API, on
daemonkit's flock pidfile: a ``kill -9`` no longer leaves a pidfile that
blocks the next start.

A :class:`PIDLockFile` wraps a :class:`daemonkit.PidFile`. As
``DaemonContext(pidfile=...)`` it is locked in the launcher, before the
fork, so that "already running" is an exception the launcher can catch;
the daemon writes its PID when the context enters it and removes the file
when the context closes. An unlocked file left by lockfile or python-daemon
whose writer still runs counts as held (see :mod:`daemonkit.compat.legacy`).

The exceptions subclass lockfile's own when lockfile is installed, so
``except lockfile.AlreadyLocked`` catches them (see
:mod:`daemonkit.compat.errors`).
"""

from __future__ import annotations

import os
import time

from ..errors import AlreadyRunning, PidFileError
from ..pidfile import PidFile, lock_holder, read_pid, remove_stale
from . import _lockfile, legacy
from .errors import (
    AlreadyLocked,
    Error,
    LockError,
    LockFailed,
    LockTimeout,
    NotLocked,
    NotMyLock,
    UnlockError,
)

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
    "PIDLockFile",
    "TimeoutPIDLockFile",
    "UnlockError",
]

# The lock is the process's, as lockfile's is: any PIDLockFile object of
# this process can release it or ask whether it is ours. Absolute path ->
# the object whose PidFile holds it.
_holders: dict[str, PIDLockFile] = {}


class PIDLockFile(_lockfile.PIDLockFile):
    """lockfile's ``PIDLockFile(path, threaded=False, timeout=None)``.

    ``timeout`` None or <= 0 fails at once with AlreadyLocked, as lockfile
    does; a positive timeout waits that long, then raises LockTimeout. A
    relative ``path`` is resolved when the lock is taken: against the
    current directory, or, for a DaemonContext, against its
    ``working_directory`` (inside ``chroot_directory``), as python-daemon,
    which opens it there, does.
    """

    def __init__(self, path: str, threaded: bool = False, timeout: float | None = None) -> None:
        self.path = path
        self.timeout = timeout
        self._pidfile: PidFile | None = None
        self._locked_by: int | None = None  # the PID that took the lock

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.path!r}>"

    def _wait(self, timeout: float | None) -> float:
        timeout = self.timeout if timeout is None else timeout
        return timeout if timeout is not None and timeout > 0 else 0

    def _where(self) -> str:
        return self._pidfile.path if self._pidfile is not None else os.path.abspath(self.path)

    def _holder(self) -> PIDLockFile | None:
        """The object holding this path's lock in this process, if any."""
        holder = self if self._pidfile is not None else _holders.get(self._where())
        if holder is None or holder._pidfile is None:
            return None
        owner = holder._pidfile.pid or holder._locked_by
        return holder if owner == os.getpid() else None

    def lock(
        self, timeout: float | None = None, *, path: str | None = None, service_uid: int | None = None
    ) -> None:
        """Take the lock without writing a PID: what DaemonContext does in
        the launcher before forking. ``path`` is where the daemon will see
        the file (``self.path`` resolved as python-daemon resolves it);
        ``service_uid`` is the user the daemon becomes, whose directory
        root may then trust for the pidfile."""
        if self._pidfile is not None:
            return
        where = os.path.abspath(path or self.path)
        wait = self._wait(timeout)
        # A lockfile-style writer that creates the file between this check
        # and the flock below is not seen: its O_EXCL create and our lock
        # would both succeed. The window is one open() long.
        deadline = time.monotonic() + wait
        while True:
            writer = legacy.live_writer(where)
            if writer is None:
                break
            if time.monotonic() >= deadline:
                raise (LockTimeout if wait else AlreadyLocked)(where, writer)
            time.sleep(0.05)
        pidfile = PidFile(where)
        try:
            _lock(pidfile, max(0.0, deadline - time.monotonic()), service_uid)
        except AlreadyRunning as exc:
            raise (LockTimeout if wait else AlreadyLocked)(where, exc.pid) from exc
        except PidFileError as exc:
            raise LockFailed(f"failed to create {where}: {exc.reason}") from exc
        self._pidfile, self._locked_by = pidfile, os.getpid()
        _holders[where] = self

    def acquire(self, timeout: float | None = None) -> None:
        """Lock (unless already locked in the launcher) and write our PID."""
        if self._pidfile is None:
            self.lock(timeout)
        elif self._pidfile.pid is not None:  # written, by us or the process we were forked from
            raise AlreadyLocked(self._pidfile.path, self._pidfile.pid)
        assert self._pidfile is not None
        self._pidfile.write(os.getpid())

    def release(self) -> None:
        """Remove the file and drop the lock, as lockfile does, from any
        object of the process that holds it."""
        holder = self._holder()
        if holder is None:
            if not self.is_locked():
                raise NotLocked(f"{self.path} is not locked")
            raise NotMyLock(f"{self.path} is locked, but not by me")
        holder._unlock()

    def _unlock(self) -> None:
        pidfile, self._pidfile = self._pidfile, None
        if pidfile is None:
            return
        if _holders.get(pidfile.path) is self:
            del _holders[pidfile.path]
        if pidfile.pid is None and self._locked_by == os.getpid():
            pidfile.pid = os.getpid()  # locked here, never written: ours to remove
        try:
            pidfile.release()
        except OSError:
            # After a privilege drop the directory may not let us unlink;
            # the lock goes with the fd all the same, and a file nobody
            # locks blocks no later start.
            pass

    def is_locked(self) -> bool:
        """Whether a live process holds the lock: through flock, or as the
        still running writer of an unlocked lockfile-style pidfile."""
        if self._holder() is not None:
            return True
        where = self._where()
        try:
            if lock_holder(where) is not None:
                return True
        except PidFileError:
            return True  # locked, but unreadable: not free either
        return legacy.live_writer(where) is not None

    def i_am_locking(self) -> bool:
        """Whether this process holds the lock (whichever object took it)."""
        if self._holder() is not None:
            return True
        try:
            holder = lock_holder(self._where())
        except PidFileError:
            return False
        return holder is not None and holder[0] == os.getpid()

    def read_pid(self) -> int | None:
        """The PID in the file; None if missing, unreadable or malformed."""
        try:
            return read_pid(self._where())
        except (OSError, PidFileError):
            return None

    def break_lock(self) -> None:
        """Remove the pidfile unless another live process holds its flock.

        A lock this process holds is released; a file nobody locks is
        removed, even if its lockfile-style writer still runs (that is what
        breaking means). A lock a live process holds through flock stays:
        removing its file would let a second instance lock a new file beside
        it. Stop that process instead.
        """
        holder = self._holder()
        if holder is not None:
            holder._unlock()
            return
        try:
            remove_stale(self._where())
        except PidFileError:
            pass  # unsafe or not ours to touch: leave it

    def fileno(self) -> int:
        """The locked fd, so that DaemonContext keeps it open."""
        if self._pidfile is None:
            raise ValueError("pidfile is not locked")
        return self._pidfile.fileno()

    def fds(self) -> list[int]:
        """Every fd DaemonContext must keep open until the PID is written."""
        return [] if self._pidfile is None else self._pidfile.fds()

    def __enter__(self) -> PIDLockFile:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        holder = self._holder()
        if holder is not None:
            holder._unlock()


def _lock(pidfile: PidFile, timeout: float, service_uid: int | None) -> None:
    if service_uid is not None and _TRUSTS_SERVICE_USER:
        pidfile.lock(timeout, service_uid=service_uid)  # type: ignore[call-arg, unused-ignore]
    else:
        pidfile.lock(timeout)


# PidFile.lock(service_uid=) trusts a directory owned by the user the daemon
# becomes; a daemonkit without it trusts only root's directories.
_code = PidFile.lock.__code__
_TRUSTS_SERVICE_USER = "service_uid" in _code.co_varnames[: _code.co_argcount + _code.co_kwonlyargcount]


class TimeoutPIDLockFile(PIDLockFile):
    """python-daemon's ``TimeoutPIDLockFile(path, acquire_timeout=None)``:
    ``acquire()`` without a timeout waits ``acquire_timeout`` seconds."""

    def __init__(self, path: str, acquire_timeout: float | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(path, *args, **kwargs)
        self.acquire_timeout = acquire_timeout

    def _wait(self, timeout: float | None) -> float:
        return super()._wait(self.acquire_timeout if timeout is None else timeout)
