"""status / stop / reload of a daemon, by its pidfile.

Only the process that holds the pidfile's lock is ever signalled: a pidfile
naming a live but unrelated process (a reused PID) is stale, and that
process is left alone.
"""

from __future__ import annotations

import os

from . import _posix
from ._posix import signal as _signal
from .errors import DaemonError, PidFileError
from .kill import Target
from .pidfile import lock_holder, read_pid, remove_stale, still_holds, untrusted

TYPE_CHECKING = False  # see __init__.py
if TYPE_CHECKING:
    from typing import Callable


class UnlockedPidFile(DaemonError):
    """stop() found a pidfile without a lock naming a process that may be
    its writer; it signals such a process only with ``unlocked=True``."""

    def __init__(self, path: str, pid: int) -> None:
        self.path, self.pid = path, pid
        super().__init__(path, pid)

    def __str__(self) -> str:
        return (
            f"pidfile {self.path} holds no lock (not written by daemonkit); pid {self.pid} "
            "started before it was written and is probably its daemon"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.path, self.pid))


#: LSB init-script status codes (LSB 3.0, section 20.2).
LSB_RUNNING, LSB_DEAD_PIDFILE, LSB_NOT_RUNNING, LSB_UNKNOWN = 0, 1, 3, 4


class Status:
    """What a pidfile says about its daemon.

    ``state`` is "running", "dead" (the daemon has exited, but processes it
    started still hold the pidfile's lock; ``reason`` names them), "stale"
    (the file is left but nobody holds its lock), "stopped" (no file) or
    "unknown" (the file is unusable; ``reason`` says why).
    """

    __slots__ = ("pidfile", "state", "pid", "started", "reason", "locked")

    def __init__(
        self,
        pidfile: str,
        state: str,
        pid: int | None = None,
        started: float | None = None,
        reason: str | None = None,
        locked: bool = True,
    ) -> None:
        self.pidfile = pidfile
        self.state = state
        self.pid = pid
        #: Start time of the process, seconds since the epoch (from /proc).
        self.started = started
        self.reason = reason
        #: False for a pidfile that holds no lock (python-daemon, lockfile):
        #: then "running" rests on the process being older than the file.
        self.locked = locked

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def stale_pidfile(self) -> bool:
        return self.state == "stale"

    @property
    def lsb_code(self) -> int:
        codes = {
            "running": LSB_RUNNING,
            "dead": LSB_DEAD_PIDFILE,
            "stale": LSB_DEAD_PIDFILE,
            "stopped": LSB_NOT_RUNNING,
        }
        return codes.get(self.state, LSB_UNKNOWN)

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        return f"Status({self.pidfile!r}, {self.state!r}, pid={self.pid})"


def status(pidfile: str | os.PathLike[str]) -> Status:
    """Whether the daemon of ``pidfile`` runs, its PID and start time."""
    path = os.path.abspath(os.fspath(pidfile))
    try:
        holder = _holder_or_stale(path)
    except PidFileError as exc:
        left = leftovers(path)
        if left is None:
            return Status(path, "unknown", reason=str(exc))
        pid, holders, _ = left
        listed = " ".join(map(str, holders))
        reason = f"pid {pid} has exited, but processes it started still hold the pidfile: {listed}"
        return Status(path, "dead", pid, reason=reason)
    if holder is None:
        if not os.path.lexists(path):
            return Status(path, "stopped")
        writer = unlocked_writer(path)
        if writer is None:
            return Status(path, "stale")
        return Status(path, "running", writer[0], writer[1], locked=False)
    pid = holder[0]
    return Status(path, "running", pid, _posix.start_time(pid))


# Process start times and file times come from different clocks, each
# precise to about a tick; a reused PID starting this close after the file
# was written is not told apart, and is taken for a newcomer.
_CLOCK_SLACK = 0.05


def unlocked_writer(path: str) -> tuple[int, float] | None:
    """For a pidfile nobody locks (written by python-daemon or lockfile): the
    PID and start time of a live process that may have written it.

    A process that started after the file was last written cannot be its
    writer: its PID was reused. Only a process older than the file counts,
    and only when the file is trustworthy (not writable by others).
    """
    pid = read_pid(path)
    started = _posix.start_time(pid) if pid is not None and _posix.is_alive(pid) else None
    if pid is None or started is None:
        return None
    st = os.stat(path, follow_symlinks=False)
    if untrusted(st) or started > st.st_mtime + _CLOCK_SLACK:
        return None
    return pid, started


def leftovers(path: str) -> tuple[int, list[int], os.stat_result] | None:
    """When the daemon named in a locked pidfile has exited while processes
    it started live on, holding the lock through the fd they inherited: its
    PID, theirs, and the file's stat. None in any other case."""
    try:
        pid = read_pid(path)
        st = os.stat(path, follow_symlinks=False)
    except (PidFileError, OSError):  # malformed, or gone meanwhile
        return None
    if pid is None or _posix.is_alive(pid) or untrusted(st):
        return None
    holders = _posix.flock_holders(st.st_dev, st.st_ino)
    return (pid, holders, st) if holders else None


def stop(
    pidfile: str | os.PathLike[str],
    timeout: float = 10.0,
    *,
    signal: int = _signal.SIGTERM,
    on_kill: Callable[[int], object] | None = None,
    unlocked: bool = False,
) -> bool:
    """Stop the daemon holding ``pidfile``: True if one was running.

    ``signal`` goes to the daemon's process group (so the children it started
    stop too); after ``timeout`` seconds ``on_kill(pid)`` is called and
    SIGKILL follows. Returns once the process has exited (a zombie counts).
    A stale pidfile is removed. Raises :class:`StopError` if the daemon
    outlives SIGKILL and :class:`PidFileError` for an unusable pidfile.

    A pidfile that holds no lock (python-daemon, lockfile) names a process
    that is only probably its writer: it is stopped only with ``unlocked``,
    else :class:`UnlockedPidFile` is raised.
    """
    path = os.path.abspath(os.fspath(pidfile))
    try:
        holder = _holder_or_stale(path)
    except PidFileError:
        left = leftovers(path)
        if left is None:
            raise
        _, holders, st = left
        for pid in holders:  # usually in the daemon's group: the first TERM ends them all
            _stop_leftover(pid, st, signal, timeout, on_kill)
        remove_stale(path, timeout=1.0)
        return True
    if holder is None:
        writer = unlocked_writer(path)
        if writer is None:
            remove_stale(path)
            return False
        if not unlocked:
            raise UnlockedPidFile(path, writer[0])
        _stop_unlocked(writer, signal, timeout, on_kill)
        remove_stale(path, timeout=1.0)
        return True
    pid, st = holder
    try:
        with Target(pid) as target:
            # The PID may have exited and been reused between reading the
            # pidfile and pinning it: only the lock holder is ever signalled.
            if still_holds(pid, st):
                target.terminate(signal, timeout, on_kill)
    except ProcessLookupError:
        pass  # it exited on its own meanwhile
    # A daemon killed by SIGKILL could not remove its pidfile. Its group got
    # the same signal; give children holding the inherited lock fd a moment.
    remove_stale(path, timeout=1.0)
    return True


def _stop_unlocked(
    writer: tuple[int, float], sig: int, timeout: float, on_kill: Callable[[int], object] | None
) -> None:
    pid, started = writer
    try:
        with Target(pid) as target:
            # Pinned now: if it is still the process we judged, it stays so.
            now = _posix.start_time(pid)
            if now is not None and abs(now - started) < _CLOCK_SLACK:
                target.terminate(sig, timeout, on_kill)
    except ProcessLookupError:
        pass


def _stop_leftover(
    pid: int, st: os.stat_result, sig: int, timeout: float, on_kill: Callable[[int], object] | None
) -> None:
    try:
        with Target(pid) as target:
            # Pinned now: if it still holds the lock, it is one of them.
            if _posix.holds_flock(pid, st.st_dev, st.st_ino):
                target.terminate(sig, timeout, on_kill)
    except ProcessLookupError:
        pass


def _holder_or_stale(path: str) -> tuple[int, os.stat_result] | None:
    """The lock holder, or None for a missing or stale file. A malformed
    file raises PidFileError even when unlocked: it is reported, not
    silently removed."""
    holder = lock_holder(path)
    if holder is None:
        read_pid(path)
    return holder


def reload(pidfile: str | os.PathLike[str]) -> bool:
    """Send SIGHUP to the daemon holding ``pidfile``; False if none runs."""
    path = os.path.abspath(os.fspath(pidfile))
    try:
        holder = _holder_or_stale(path)
    except PidFileError:
        if leftovers(path) is None:
            raise
        return False  # the daemon has exited; what it left is not the daemon
    if holder is None:
        return False
    pid, st = holder
    try:
        with Target(pid) as target:
            if not still_holds(pid, st):
                return False
            target.send(_signal.SIGHUP, group=False)
    except ProcessLookupError:
        return False
    return True
