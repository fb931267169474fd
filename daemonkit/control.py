"""status / stop / reload of a daemon, by its pidfile.

:func:`status` works out the whole state once; :func:`stop` and
:func:`reload` act on that state and return the :class:`Status` they acted
on. Only a process that holds the pidfile's flock is ever signalled (seen
through /proc/PID/fdinfo), never a process that merely has the file open,
never the caller, and never a PID that was reused since.
"""

from __future__ import annotations

import os
import time

from . import _posix
from ._posix import SIGHUP, SIGKILL, SIGTERM
from .errors import DaemonError, PidFileError, StopError, UnlockedPidFile
from .kill import Target
from .pidfile import read_pid, remove_stale, untrusted

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

#: LSB init-script status codes (LSB 3.0, section 20.2).
LSB_CODES = {"running": 0, "dead": 1, "stale": 1, "stopped": 3}
LSB_UNKNOWN = 4
# Process start times and file times come from different clocks, each
# precise to about a tick; a reused PID starting this close after the file
# was written is not told apart, and is taken for a newcomer.
_CLOCK_SLACK = 0.05
# A locked file may be empty for an instant: between the lock and the write.
_STARTING_GRACE = 2.0


class Status:
    """What a pidfile says about its daemon.

    ``state`` is "running"; "dead" (the daemon has exited, but processes it
    started still hold the pidfile's lock: ``holders``); "stale" (the file
    is left but nobody holds its lock); "stopped" (no file); or "unknown"
    (the file is unusable or untrusted; ``reason`` says why).
    """

    __slots__ = ("pidfile", "state", "pid", "started", "reason", "locked", "holders", "file_id", "error")

    def __init__(
        self,
        pidfile: str,
        state: str,
        pid: int | None = None,
        *,
        started: float | None = None,
        reason: str | None = None,
        locked: bool = True,
        holders: tuple[int, ...] = (),
        file_id: tuple[int, int] | None = None,
        error: PidFileError | None = None,
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
        #: Processes holding the lock (the daemon, or what it left).
        self.holders = holders
        #: (st_dev, st_ino) of the pidfile that was inspected.
        self.file_id = file_id
        #: Why the state is "unknown": what stop() and reload() raise.
        self.error = error

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def lsb_code(self) -> int:
        return LSB_CODES.get(self.state, LSB_UNKNOWN)

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__ if name not in ("file_id", "error")}

    def __repr__(self) -> str:
        return f"Status({self.pidfile!r}, {self.state!r}, pid={self.pid})"


def status(pidfile: str | os.PathLike[str]) -> Status:
    """Whether the daemon of ``pidfile`` runs, its PID and start time."""
    path = os.path.abspath(os.fspath(pidfile))
    try:
        return _inspect(path)
    except PidFileError as exc:
        return Status(path, "unknown", reason=str(exc), error=exc)


def _inspect(path: str) -> Status:
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return Status(path, "stopped")
    pid = read_pid(path)  # PidFileError for a symlink, a FIFO, garbage
    file_id = (st.st_dev, st.st_ino)
    if not _locked(path, st):
        writer = _unlocked_writer(path, pid, st)
        if writer is None:
            return Status(path, "stale", pid, file_id=file_id)
        return Status(path, "running", pid, started=writer, locked=False, file_id=file_id)
    deadline = time.monotonic() + _STARTING_GRACE
    while pid is None:  # locked but not yet written: the daemon is starting
        if time.monotonic() >= deadline:
            raise PidFileError(path, "is locked but holds no PID")
        time.sleep(0.005)
        pid = read_pid(path)
    if _holds(pid, st):
        _check_trusted(path, (pid,))
        return Status(path, "running", pid, started=_posix.start_time(pid), holders=(pid,), file_id=file_id)
    holders = tuple(p for p in _posix.flock_holders(st.st_dev, st.st_ino) if p != os.getpid())
    if holders and not _posix.is_alive(pid):
        _check_trusted(path, holders)
        listed = " ".join(map(str, holders))
        reason = f"pid {pid} has exited, but processes it started still hold the pidfile: {listed}"
        return Status(path, "dead", pid, reason=reason, holders=holders, file_id=file_id)
    raise PidFileError(path, f"names PID {pid}, which does not hold its lock; refusing to trust it")


def _locked(path: str, st: os.stat_result) -> bool:
    held = _posix.flock_held(st.st_dev, st.st_ino)
    if held is not None:
        return held
    from .pidfile import is_running  # no /proc/locks: probe the lock

    return is_running(path)


def _holds(pid: int, st: os.stat_result) -> bool:
    """Whether ``pid`` (not us) holds the flock of the file ``st``."""
    if pid == os.getpid():
        return False
    if _posix.may_inspect(pid):
        return _posix.holds_flock(pid, st.st_dev, st.st_ino)
    # We may not look (another user's process): believe a file that only
    # root or we could have written; signalling it then fails as "not ours".
    return _posix.is_alive(pid) and not untrusted(st)


def _check_trusted(path: str, holders: tuple[int, ...]) -> None:
    """As root, the path must be one nobody else controls (RELIABILITY 2):
    a user who owns a directory on it could link another daemon's pidfile
    there. A directory owned by the user the holders run as is accepted:
    signalling their own processes gives them nothing they lack."""
    if os.geteuid() != 0:
        return
    from . import safedir

    try:
        os.close(safedir.open_trusted_directory(path))
        return
    except PidFileError:
        owners = {_posix.real_uid(pid) for pid in holders}
        if len(owners) != 1 or None in owners or 0 in owners:
            raise
    (owner,) = owners
    os.close(safedir.open_trusted_directory(path, service_uid=owner))


def _unlocked_writer(path: str, pid: int | None, st: os.stat_result) -> float | None:
    """For a pidfile nobody locks (written by python-daemon or lockfile): the
    start time of a live process that may have written it.

    A process that started after the file was last written cannot be its
    writer: its PID was reused. Only a process older than the file counts,
    and only when the file is trustworthy (not writable by others).
    """
    if pid is None or pid == os.getpid() or not _posix.is_alive(pid):
        return None
    started = _posix.start_time(pid)
    if started is None or untrusted(st) or started > st.st_mtime + _CLOCK_SLACK:
        return None
    return started


def stop(
    pidfile: str | os.PathLike[str],
    timeout: float = 10.0,
    *,
    signal: int = SIGTERM,
    on_kill: Callable[[int], object] | None = None,
    unlocked: bool = False,
    state: Status | None = None,
) -> Status:
    """Stop the daemon of ``pidfile``, and every process holding its lock;
    return the Status it acted on (``state``, or a fresh one).

    ``signal`` goes to the daemon (and its group, see kill.py); after
    ``timeout`` seconds ``on_kill(pid)`` is called and SIGKILL follows.
    Returns once no process holds the lock. A stale pidfile is removed.
    Raises :class:`StopError` naming the processes still holding the lock,
    :class:`PidFileError` for an unusable or untrusted pidfile (before
    anything is signalled), and :class:`UnlockedPidFile` for a pidfile
    without a lock (python-daemon, lockfile) unless ``unlocked``.
    """
    path = os.path.abspath(os.fspath(pidfile))
    state = state or status(path)
    if state.state == "unknown":
        raise state.error or PidFileError(path, "unusable")
    if state.state in ("stopped", "stale"):
        remove_stale(path)
        return state
    if not state.locked:
        assert state.pid is not None
        if not unlocked:
            raise UnlockedPidFile(path, state.pid)
        _stop_unlocked(state, signal, timeout, on_kill)
        remove_stale(path, timeout=1.0)
        return state
    assert state.file_id is not None
    dev, ino = state.file_id
    deadline = time.monotonic() + timeout
    signalled: set[int] = set()
    targets = list(state.holders)
    while targets:
        # Descendants that left the daemon's group (setsid, double forks)
        # but still hold the inherited lock are found and stopped in turn.
        for pid in targets:
            if pid not in signalled:
                _signal_holder(pid, dev, ino, signal)
                signalled.add(pid)
        for pid in targets:
            _wait_for(pid, deadline)
        if _posix.flock_held(dev, ino) is False:  # one read of /proc/locks: nobody is left
            break
        targets = _lock_holders(dev, ino, state.pid)
        if targets and time.monotonic() >= deadline:
            _kill(targets, dev, ino, on_kill, state.pid)
            break
    remove_stale(path, timeout=1.0)
    return state


def _kill(
    pids: list[int], dev: int, ino: int, on_kill: Callable[[int], object] | None, main: int | None
) -> None:
    """SIGKILL what is left; StopError if some of it outlives that too."""
    if on_kill is not None:
        on_kill(pids[0])
    for pid in pids:
        _signal_holder(pid, dev, ino, SIGKILL)
    deadline = time.monotonic() + 5.0
    for pid in pids:
        _wait_for(pid, deadline)
    left = _lock_holders(dev, ino, main)
    if left:
        listed = " ".join(map(str, left))
        raise StopError(f"still holding the pidfile after SIGKILL: pid {listed}", tuple(left))


def _lock_holders(dev: int, ino: int, main: int | None) -> list[int]:
    """Live processes holding the lock, never the caller; and the daemon
    ``main`` while it lives, if we may not look at its fds (another user's,
    or no /proc)."""
    me = os.getpid()
    holders = [p for p in _posix.flock_holders(dev, ino) if p != me and _posix.is_alive(p)]
    if main is not None and main not in holders and not _posix.may_inspect(main) and not _exited(main):
        holders.insert(0, main)
    return holders


def _exited(pid: int) -> bool:
    """Whether ``pid`` has exited; a zombie counts (its pidfd says so, where
    kill(pid, 0) would not)."""
    try:
        with Target(pid) as target:
            return target.exited()
    except ProcessLookupError:
        return True


def _signal_holder(pid: int, dev: int, ino: int, sig: int) -> None:
    """Signal ``pid`` through a pidfd, if it still holds the lock once pinned."""
    try:
        with Target(pid) as target:
            if _posix.may_inspect(pid) and not _posix.holds_flock(pid, dev, ino):
                return  # exited, and its PID reused, before we pinned it
            if sig == SIGKILL:
                target.kill()
            else:
                target.send(sig)
    except ProcessLookupError:
        pass


def _wait_for(pid: int, deadline: float) -> None:
    try:
        with Target(pid) as target:
            target.wait(max(0.0, deadline - time.monotonic()))
    except ProcessLookupError:
        pass


def _stop_unlocked(state: Status, sig: int, timeout: float, on_kill: Callable[[int], object] | None) -> None:
    assert state.pid is not None
    try:
        with Target(state.pid) as target:
            # Pinned now: if it is still the process we judged, it stays so.
            now = _posix.start_time(state.pid)
            if now is not None and state.started is not None and abs(now - state.started) < _CLOCK_SLACK:
                target.terminate(sig, timeout, on_kill)
    except ProcessLookupError:
        pass


def reload(
    pidfile: str | os.PathLike[str],
    *,
    signal: int = SIGHUP,
    force: bool = False,
    state: Status | None = None,
) -> Status:
    """Send ``signal`` (default SIGHUP) to the running daemon of ``pidfile``;
    return the Status it acted on (check ``.running``: nothing is sent
    otherwise).

    A signal the daemon neither catches nor ignores would kill it (node,
    ``python -m http.server`` and SIGHUP), and one it ignores does nothing:
    both raise :class:`DaemonError` before sending, unless ``force``. After
    sending, a daemon that died of it raises DaemonError too.
    """
    path = os.path.abspath(os.fspath(pidfile))
    state = state or status(path)
    if state.state == "unknown":
        raise state.error or PidFileError(path, "unusable")
    if not state.running or state.pid is None:
        return state
    from signal import SIGCHLD, SIGCONT, SIGURG, SIGWINCH

    from .signals import signal_name

    name = signal_name(signal)
    disposition = _posix.signal_disposition(state.pid, signal)
    if disposition == "default" and signal in (SIGCHLD, SIGCONT, SIGURG, SIGWINCH):
        disposition = "ignored"  # their default action is to do nothing (signal(7))
    if not force and disposition in ("default", "ignored"):
        effect = "ignores it" if disposition == "ignored" else "has no handler for it, so it would die"
        raise DaemonError(f"pid {state.pid} {effect}; not sent (--force sends {name} anyway)")
    try:
        with Target(state.pid) as target:
            target.send(signal, group=False)
            if target.wait(0.05 if disposition == "default" else 0.0):
                raise DaemonError(f"pid {state.pid} exited on {name}")
    except ProcessLookupError:
        state.state = "stopped"
    return state
