"""lockfile's names, from lockfile itself when it is installed, else
stand-ins with the same hierarchy, so that compat's classes can subclass
them either way and ``except lockfile.AlreadyLocked`` keeps working."""

from __future__ import annotations

TYPE_CHECKING = False  # see daemonkit/__init__.py


class Error(Exception):
    """lockfile.Error."""


class LockError(Error):
    """lockfile.LockError: acquiring failed."""


class LockTimeout(LockError):
    """lockfile.LockTimeout."""


class AlreadyLocked(LockError):
    """lockfile.AlreadyLocked."""


class LockFailed(LockError):
    """lockfile.LockFailed."""


class UnlockError(Error):
    """lockfile.UnlockError: releasing failed."""


class NotLocked(UnlockError):
    """lockfile.NotLocked."""


class NotMyLock(UnlockError):
    """lockfile.NotMyLock."""


class PIDLockFile:
    """Stands in for lockfile.pidlockfile.PIDLockFile as a base class."""


if not TYPE_CHECKING:
    try:
        import lockfile
        import lockfile.pidlockfile
    except Exception:  # not installed, or broken on this Python: as if absent
        pass
    else:
        Error, LockError, LockTimeout = lockfile.Error, lockfile.LockError, lockfile.LockTimeout
        AlreadyLocked, LockFailed = lockfile.AlreadyLocked, lockfile.LockFailed
        UnlockError, NotLocked, NotMyLock = lockfile.UnlockError, lockfile.NotLocked, lockfile.NotMyLock
        PIDLockFile = lockfile.pidlockfile.PIDLockFile
