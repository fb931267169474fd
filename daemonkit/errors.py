"""Every exception daemonkit raises.

Every error derives from :class:`DaemonError`. Leaves that refine a builtin
also subclass it, so ``except OSError`` keeps working. Each passes its
constructor's arguments on to ``Exception.__init__``, so that it pickles with
its attributes and no custom ``__reduce__``: a daemon's error travels back to
the launcher.
"""

from __future__ import annotations

import os


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


class PidFileError(DaemonError, ValueError):
    """The pidfile is unusable: malformed, unsafe, or in the wrong place."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(self.path, reason)

    def __str__(self) -> str:
        return f"pidfile {self.path}: {self.reason}"


class UnlockedPidFile(DaemonError):
    """A pidfile without a lock (written by python-daemon or lockfile) names
    a live process that is probably its writer; :func:`daemonkit.stop`
    signals such a process only with ``unlocked=True``."""

    def __init__(self, path: str | os.PathLike[str], pid: int) -> None:
        self.path = os.fspath(path)
        self.pid = pid
        super().__init__(self.path, pid)

    def __str__(self) -> str:
        return (
            f"pidfile {self.path} holds no lock (not written by daemonkit); pid {self.pid} "
            "started before it was written and is probably its daemon"
        )


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


class StopError(DaemonError):
    """A daemon could not be stopped: it outlived SIGKILL, or processes
    holding its pidfile's lock are left (``pids``)."""

    def __init__(self, message: str, pids: tuple[int, ...] = ()) -> None:
        self.message = message
        self.pids = tuple(pids)
        super().__init__(message, self.pids)

    def __str__(self) -> str:
        return self.message


class NotifyError(DaemonError, OSError):
    """A message could not be sent to the service manager's $NOTIFY_SOCKET.

    An OSError with the usual ``errno`` and ``strerror`` (``errno`` is None
    for an address daemonkit cannot use), and the socket's ``address``.
    """

    def __init__(self, errno: int | None, strerror: str, address: str) -> None:
        super().__init__(errno, strerror, address)

    @property
    def address(self) -> str:
        return str(self.filename)

    def __str__(self) -> str:
        return f"cannot notify {self.address}: {self.strerror}"


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
