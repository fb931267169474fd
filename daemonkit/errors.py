"""The exceptions daemonkit raises.

Every error derives from :class:`DaemonError`. Leaves that refine a builtin
also subclass it, so ``except OSError`` keeps working. All of them pickle
with their attributes, because a daemon's error travels back to the launcher.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # see __init__.py
if TYPE_CHECKING:
    from typing import Any


class DaemonError(Exception):
    """Base class of every daemonkit error."""


class AlreadyRunning(DaemonError):
    """The pidfile is locked by a live process.

    ``pid`` is the holder's PID when it could be read, else None.
    """

    def __init__(self, path: str | os.PathLike[str], pid: int | None = None) -> None:
        self.path = os.fspath(path)
        self.pid = pid
        super().__init__(self.path, pid)

    def __str__(self) -> str:
        who = f"pid {self.pid}" if self.pid is not None else "pid unknown"
        return f"already running ({who}); pidfile {self.path}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.pid))


class PidFileError(DaemonError, ValueError):
    """The pidfile is unusable: malformed, unsafe, or in the wrong place."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(self.path, reason)

    def __str__(self) -> str:
        return f"pidfile {self.path}: {self.reason}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.reason))


class StartupError(DaemonError):
    """The daemon failed before it was ready.

    ``message`` is the daemon's own one-line explanation and ``exit_status``
    the status the launcher exits with (never 0).
    """

    def __init__(self, message: str, exit_status: int = 1) -> None:
        self.message = message
        self.exit_status = exit_status or 1
        super().__init__(message, self.exit_status)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.exit_status))


class NotifyError(DaemonError, OSError):
    """A message could not be sent to the service manager's $NOTIFY_SOCKET."""

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(address, reason)

    def __str__(self) -> str:
        return f"cannot notify {self.address}: {self.reason}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.address, self.reason))


class UnsafeFileError(DaemonError):
    """A file daemonkit was to open as root (a log, stdout/stderr, a start
    record) could have been planted or redirected by another user, or cannot
    be used. ``kind`` says what the file was for.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str, kind: str = "file") -> None:
        self.path = os.fspath(path)
        self.reason = reason
        self.kind = kind
        super().__init__(self.path, reason, kind)

    def __str__(self) -> str:
        return f"{self.kind} {self.path}: {self.reason}"


class RecordError(UnsafeFileError):
    """A start record that is not to be believed (planted, or in a directory
    other users can write to), or that cannot be written."""

    def __init__(self, path: str | os.PathLike[str], reason: str, kind: str = "start record") -> None:
        super().__init__(path, reason, kind)
