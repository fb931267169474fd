"""Reading a pidfile and telling who holds it, without trusting it.

The PID in a pidfile is believed only if it parses strictly and names the
process that holds the file's flock; merely having the file open proves
nothing. The lock itself is taken by :class:`daemonkit.pidfile.PidFile`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time

from . import _posix
from .errors import PidFileError

# "PID\n" is at most 11 bytes; anything longer is not a pidfile.
_MAX_BYTES = 32
_OPEN_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# A locked file may be empty for an instant: between the lock and the write.
_STARTING_GRACE = 2.0


def parse_pid(data: bytes, path: str = "<bytes>") -> int | None:
    """Parse pidfile contents strictly: ``^[1-9][0-9]*\\n?$`` and <= pid_max.

    Returns None for empty contents. int() alone would accept " 12\\n",
    "1_000" and Arabic-Indic digits; PID 0 and -1 would make kill() signal a
    whole process group or every process.
    """
    if not data:
        return None
    body = data[:-1] if data.endswith(b"\n") else data
    if not body or len(body) > 10 or not body.isdigit() or body.startswith(b"0"):
        raise PidFileError(path, f"malformed contents {data[:16]!r}; expected a PID and a newline")
    pid = int(body)
    if pid == 1:
        raise PidFileError(path, "names PID 1 (init); refusing to use it")
    if pid > _posix.pid_max():
        raise PidFileError(path, f"names PID {pid}, above the system's pid_max")
    return pid


def _open(path: str, flags: int) -> int:
    """Open ``path`` without following a symlink or blocking on a FIFO."""
    try:
        fd = os.open(path, flags | _OPEN_FLAGS)
    except OSError as exc:
        raise _open_error(path, exc) from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise PidFileError(path, "is not a regular file; refusing to use it")
    return fd


def _open_error(path: str, exc: OSError) -> OSError | PidFileError:
    if exc.errno == errno.ELOOP:
        return PidFileError(path, "is a symbolic link; refusing to follow it")
    if exc.errno == errno.EISDIR:
        return PidFileError(path, "is a directory")
    if exc.errno == errno.ENOENT:
        return PidFileError(path, f"directory {os.path.dirname(path)} does not exist")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PidFileError(path, f"cannot open: {exc.strerror}")
    return PidFileError(path, exc.strerror or str(exc))


def _open_existing(path: str) -> int | None:
    """Open for reading, safely; None if the file does not exist."""
    try:
        return _open(path, os.O_RDONLY)
    except PidFileError as exc:
        if isinstance(exc.__cause__, FileNotFoundError):
            return None
        raise


def _read(fd: int, path: str) -> int | None:
    data = os.pread(fd, _MAX_BYTES + 1, 0)
    if len(data) > _MAX_BYTES:
        raise PidFileError(path, f"is larger than {_MAX_BYTES} bytes; not a pidfile")
    return parse_pid(data, path)


def read_pid(path: str | os.PathLike[str]) -> int | None:
    """The PID in ``path``: None if the file is missing or empty.

    Raises :class:`PidFileError` for a malformed, oversized, symlinked or
    non-regular file. Says nothing about liveness: see :func:`is_running`.
    """
    path = os.path.abspath(os.fspath(path))
    fd = _open_existing(path)
    if fd is None:
        return None
    try:
        return _read(fd, path)
    finally:
        os.close(fd)


def _is_locked(fd: int, st: os.stat_result) -> bool:
    held = _posix.flock_held(st.st_dev, st.st_ino)
    if held is not None:
        return held
    # No /proc/locks: probe with a shared lock. For an instant this makes a
    # racing start fail; there is no side-effect-free probe on such systems.
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    return False  # our probe lock goes with our fd


def untrusted(st: os.stat_result) -> bool:
    """A file others can write names whatever PID they like (CVE-2018-16888)."""
    foreign_owner = st.st_uid not in (0, os.geteuid())
    return bool(st.st_mode & stat.S_IWOTH) or foreign_owner


def holder_pid(fd: int, path: str, st: os.stat_result) -> int | None:
    """The PID in a locked pidfile, verified to hold the lock on it; None if
    the lock was released while the file was still empty (a daemon that
    died starting).

    Merely having the file open proves nothing: a ``tail -f``, a log
    shipper or the caller itself has it open, and a daemon that dropped its
    privileges could write any of their PIDs into it. Only a process with an
    fd on the flock counts (/proc/PID/fdinfo); the caller, only if it
    provably holds the lock itself.
    """
    deadline = time.monotonic() + _STARTING_GRACE
    pid = _read(fd, path)
    while pid is None:  # locked but not yet written: the daemon is starting
        if time.monotonic() >= deadline:
            raise PidFileError(path, "is locked but holds no PID")
        time.sleep(0.005)
        if _posix.flock_held(st.st_dev, st.st_ino) is False:
            return None  # ... or was: it died before writing its PID
        pid = _read(fd, path)
    holds = _posix.flock_held_by(pid, st.st_dev, st.st_ino)
    if pid == os.getpid() and holds is False:
        raise PidFileError(path, f"names PID {pid}, the caller itself; refusing to trust it")
    if holds is False or (holds is None and untrusted(st)):
        raise PidFileError(path, f"names PID {pid}, which does not hold its lock; refusing to trust it")
    return pid


def is_running(path: str | os.PathLike[str]) -> bool:
    """Whether a live process holds the pidfile's lock.

    False means nobody holds the lock: the file is missing or stale (left by
    ``kill -9``, or naming a PID that was reused since). Raises
    :class:`PidFileError` when the file is unsafe or malformed.
    :func:`daemonkit.status` tells more: the PID, and what a dead daemon left.
    """
    return lock_holder(path) is not None


def lock_holder(path: str | os.PathLike[str]) -> tuple[int, os.stat_result] | None:
    """Like :func:`is_running`, with the stat of the locked file, so that a
    caller can check again later that the PID still holds that very file."""
    path = os.path.abspath(os.fspath(path))
    fd = _open_existing(path)
    if fd is None:
        return None
    try:
        st = os.fstat(fd)
        if not _is_locked(fd, st):
            return None
        pid = holder_pid(fd, path, st)
        return None if pid is None else (pid, st)
    finally:
        os.close(fd)
