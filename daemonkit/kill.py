"""Stopping a process without ever hitting the wrong one.

The main process is pinned by a pidfd (Linux 5.3+): a signal through it
reaches that process or fails with ESRCH, never a newcomer with a recycled
PID, and polling it wakes us at the exit instead of on a timer. A zombie
counts as exited. Signals to the whole process group are sent only while the
pinned process is alive and a member, so the group id cannot have been
recycled (the kernel keeps a group's id reserved while it has members).
"""

from __future__ import annotations

import os

from . import _posix
from ._posix import signal
from .errors import DaemonError

TYPE_CHECKING = False  # see __init__.py
if TYPE_CHECKING:
    from typing import Callable


class StopError(DaemonError):
    """The process did not exit, even after SIGKILL."""

    def __init__(self, pid: int, message: str) -> None:
        self.pid = pid
        self.message = message
        super().__init__(pid, message)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.pid, self.message))


class Target:
    """A process pinned for signalling: its pidfd, and its group if it leads
    one or belongs to a group other than ours."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.pidfd = _posix.pidfd_open(pid)  # ProcessLookupError if gone
        try:
            pgid = os.getpgid(pid)
        except ProcessLookupError:
            pgid = 0
        self.pgid = pgid if pgid > 1 and pgid != os.getpgrp() else 0

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None

    def exited(self) -> bool:
        return _posix.wait_exit(self.pid, self.pidfd, 0)

    def send(self, sig: int, group: bool = True) -> None:
        """Send ``sig`` to the process (and its group); gone is not an error,
        another user's process is (systemd #6632: say "not ours")."""
        try:
            if group and self.pgid and not self.exited():
                os.killpg(self.pgid, sig)
            else:
                _posix.send_signal(self.pid, sig, self.pidfd)
        except ProcessLookupError:
            pass
        except PermissionError as exc:
            raise DaemonError(
                f"pid {self.pid} is not ours to signal (another user's process); run as its user or as root"
            ) from exc

    def wait(self, timeout: float) -> bool:
        return _posix.wait_exit(self.pid, self.pidfd, timeout)

    def terminate(
        self,
        sig: int = signal.SIGTERM,
        timeout: float = 10.0,
        on_kill: Callable[[int], object] | None = None,
        kill_timeout: float = 5.0,
    ) -> bool:
        """``sig``, wait ``timeout``; then SIGKILL and wait ``kill_timeout``.

        Returns True if the process needed SIGKILL. Raises StopError if it
        outlives that too (a process stuck in the kernel, say).
        """
        self.send(sig)
        if self.wait(timeout):
            return False
        if on_kill is not None:
            on_kill(self.pid)
        self.send(signal.SIGKILL)
        if self.wait(kill_timeout):
            return True
        raise StopError(self.pid, f"pid {self.pid} is still alive after SIGKILL")

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
