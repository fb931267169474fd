"""Stopping a process without ever hitting the wrong one.

The main process is pinned by a pidfd (Linux 5.3+): a signal through it
reaches that process or fails with ESRCH, never a newcomer with a recycled
PID, and polling it wakes us at the exit instead of on a timer. A zombie
counts as exited.

Its process group is signalled too, so that the children it started stop
with it, but only when the group is the daemon's own: the process leads it,
or the group is a whole session whose leader has exited (what daemonkit's
launch leaves: see launch.py) and every member of it descends from the
process. A process started in the foreground, in a shell script's group, is
signalled alone: its siblings and the script are not ours to stop, even
once the script has exited. The group is signalled only while the pinned
process is alive and a member, so its id cannot have been recycled (the
kernel keeps a group's id reserved while it has members).
"""

from __future__ import annotations

import os

from . import _posix
from ._posix import SIGKILL, SIGTERM
from .errors import DaemonError, StopError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable


def _own_group(pid: int) -> int:
    """The process group to signal with ``pid``, or 0 for none."""
    try:
        pgid, sid = os.getpgid(pid), os.getsid(pid)
    except (ProcessLookupError, PermissionError):
        return 0
    if pgid <= 1 or pgid == os.getpgrp():
        return 0
    if pgid == pid:
        return pgid
    # A session whose leader exited is what daemonkit's launch leaves, but
    # also what a script leaves that started two `daemonkit run` workers and
    # exited: the group is the daemon's only if every member of it is the
    # daemon or a descendant of it.
    if pgid == sid and not _posix.is_alive(pgid):
        members = _posix.group_members(pgid)
        return pgid if all(_posix.descends_from(member, pid) for member in members) else 0
    return 0


class Target:
    """A process pinned for signalling: its pidfd, and its own group if any."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.pidfd = _posix.pidfd_open(pid)  # ProcessLookupError if gone
        self.pgid = _own_group(pid)

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None

    def exited(self) -> bool:
        return _posix.wait_exit(self.pid, self.pidfd, 0)

    def send(self, sig: int, group: bool = True) -> None:
        """Send ``sig`` to the process's group if it has its own (see the
        module's docstring), else to the process. Gone is not an error;
        another user's process is (systemd #6632: say "not ours")."""
        try:
            if group and self.pgid and not self.exited() and os.getpgid(self.pid) == self.pgid:
                os.killpg(self.pgid, sig)
            else:
                _posix.send_signal(self.pid, sig, self.pidfd)
        except ProcessLookupError:
            pass
        except PermissionError as exc:
            raise DaemonError(
                f"pid {self.pid} is not ours to signal (another user's process); run as its user or as root"
            ) from exc

    def kill(self) -> None:
        """SIGKILL to the group and, through the pidfd, to the process
        itself: it may have left the group since (setsid on SIGTERM)."""
        self.send(SIGKILL)
        try:
            _posix.send_signal(self.pid, SIGKILL, self.pidfd)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float) -> bool:
        return _posix.wait_exit(self.pid, self.pidfd, timeout)

    def terminate(
        self,
        sig: int = SIGTERM,
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
        self.kill()
        if self.wait(kill_timeout):
            return True
        raise StopError(f"pid {self.pid} is still alive after SIGKILL", (self.pid,))

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stop_quietly(target: Target, grace: float) -> None:
    """Stop a half-started or abandoned process: TERM, then KILL after
    ``grace`` seconds; one that will not die is left to the caller's error."""
    try:
        target.terminate(timeout=grace, kill_timeout=grace)
    except (StopError, DaemonError):
        pass
