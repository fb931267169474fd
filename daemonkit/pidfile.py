"""Pidfiles that cannot go stale and cannot be tricked.

Liveness is the flock on the file, held for the daemon's whole life and
freed by the kernel when it dies, never the file's existence and never
``kill(pid, 0)``. The file holds exactly ``PID\\n``, the format systemd's
PIDFile=, start-stop-daemon and monitoring tools read.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time

from . import _posix, safedir
from .errors import AlreadyRunning, PidFileError

TYPE_CHECKING = False  # see daemonkit/__init__.py
if TYPE_CHECKING:
    from types import TracebackType

# "PID\n" is at most 11 bytes; anything longer is not a pidfile.
_MAX_BYTES = 32
_OPEN_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# A locked file may be empty for an instant: between the lock and the write.
_STARTING_GRACE = 2.0


def _warn_if_networked(path: str) -> None:
    """RELIABILITY 15: on NFS or FUSE an flock may not exclude another host."""
    fstype = _posix.filesystem_type(os.path.dirname(path)) if _posix.HAS_PROC else None
    if fstype and fstype.startswith(_posix.NETWORK_FILESYSTEMS):
        import warnings

        warnings.warn(
            f"pidfile {path} is on {fstype}: its lock may not stop a daemon on another host; "
            "prefer a local directory such as /run",
            RuntimeWarning,
            stacklevel=3,
        )


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


def _open(path: str, flags: int, mode: int = 0o644, dir_fd: int | None = None) -> int:
    """Open ``path`` without following a symlink or blocking on a FIFO;
    with ``dir_fd``, the file of that name in that directory."""
    name = path if dir_fd is None else os.path.basename(path)
    try:
        fd = os.open(name, flags | _OPEN_FLAGS, mode, dir_fd=dir_fd)
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


def _holder_pid(fd: int, path: str, st: os.stat_result) -> int:
    """The PID in a locked pidfile, verified to hold the lock on it.

    Merely having the file open proves nothing: a ``tail -f``, a log
    shipper or the caller itself has it open, and a daemon that dropped its
    privileges could write any of their PIDs into it. Only a process with an
    fd on the flock counts (/proc/PID/fdinfo); the caller, only if it
    holds the lock itself. Where /proc cannot tell, only a file nobody else
    could have written is believed.
    """
    deadline = time.monotonic() + _STARTING_GRACE
    pid = _read(fd, path)
    while pid is None:  # locked but not yet written: the daemon is starting
        if time.monotonic() >= deadline:
            raise PidFileError(path, "is locked but holds no PID")
        time.sleep(0.005)
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
        return _holder_pid(fd, path, st), st
    finally:
        os.close(fd)


def still_holds(pid: int, st: os.stat_result) -> bool:
    """False if ``pid`` provably no longer holds the lock on the pidfile (dev, ino)."""
    return _posix.flock_held_by(pid, st.st_dev, st.st_ino) is not False


def remove_stale(path: str | os.PathLike[str], timeout: float = 0) -> bool:
    """Remove a pidfile nobody holds, taking its lock first; True if removed.

    Waits up to ``timeout`` seconds for the lock: children of a stopped
    daemon that inherited its lock fd may take a moment to die too. A live
    holder's file, or a file that is not ours to touch, stays.
    """
    path = os.path.abspath(os.fspath(path))
    if not os.path.lexists(path):
        return False
    pidfile = PidFile(path)
    try:
        pidfile.lock(timeout)
    except AlreadyRunning:
        return False
    pidfile.pid = os.getpid()  # so that release() unlinks it
    pidfile.release()
    return True


class PidFile:
    """An exclusive, flock-guarded pidfile.

    ``with PidFile("app.pid"):`` takes the lock and writes our PID, or raises
    :class:`AlreadyRunning`. Leaving the block removes the file, but only
    from the process that wrote it and only while the path still names our
    inode. The lock fd is O_CLOEXEC and never explicitly unlocked: a child's
    unlock would free the parent's lock (flock(2)).

    The lock is held on a read-only fd (:meth:`fileno`), the one a daemon
    keeps and an exec'ed command inherits: flock(2) works on any open mode,
    and a daemon that dropped its privileges cannot write another PID
    through it. The PID is written through a second, read-write fd
    (``write_fd``) that :meth:`write` closes.

    It also works as python-daemon's ``pidfile=`` argument.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, mode: int = 0o644, service_uid: int | None = None
    ) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.mode = mode
        #: As root: the user the daemon will become, who may own the
        #: pidfile's directory (see safedir.open_trusted_directory).
        self.service_uid = service_uid
        self.fd: int | None = None
        #: The read-write fd the PID is written through, until it is.
        self.write_fd: int | None = None
        #: The PID this object wrote, None until then.
        self.pid: int | None = None

    def __repr__(self) -> str:
        return f"PidFile({self.path!r}, pid={self.pid})"

    def fileno(self) -> int:
        """The read-only fd that holds the lock."""
        if self.fd is None:
            raise ValueError("pidfile is not locked")
        return self.fd

    @property
    def is_locked(self) -> bool:
        return self.fd is not None

    def acquire(self, timeout: float = 0) -> None:
        """Lock the file and write our PID, waiting up to ``timeout`` seconds."""
        self.lock(timeout)
        self.write(os.getpid())

    def fds(self) -> list[int]:
        """Every fd this object holds: the read-only lock fd, and until the
        PID is written the read-write one (the daemon keeps both through
        step 5)."""
        return [fd for fd in (self.fd, self.write_fd) if fd is not None]

    def lock(self, timeout: float = 0, *, service_uid: int | None = None) -> None:
        """Take the lock and empty the file, without writing a PID yet.

        daemonize() locks in the launcher, so that "already running" is an
        immediate error in the terminal, and writes the PID after the fork.
        As root, ``service_uid`` (default: the one given to the constructor)
        is the user the daemon will become: a directory of theirs on the
        path is trusted too.
        """
        if self.fd is not None:
            return
        if service_uid is None:
            service_uid = self.service_uid
        # As root, only through directories nobody else controls (RELIABILITY 2).
        dir_fd = (
            safedir.open_trusted_directory(self.path, service_uid=service_uid, error=PidFileError)
            if os.geteuid() == 0
            else None
        )
        try:
            self._lock(timeout, dir_fd, service_uid)
        finally:
            if dir_fd is not None:
                os.close(dir_fd)

    def _open_pair(self, dir_fd: int | None, service_uid: int | None) -> tuple[int, int]:
        """(read-only fd, read-write fd) on one inode, opened no-follow in ``dir_fd``."""

        def open_(flags: int) -> int:
            return safedir.open_in_directory(
                dir_fd, self.path, flags, self.mode, service_uid=service_uid, error=PidFileError
            )

        while True:
            write_fd = open_(os.O_RDWR | os.O_CREAT)
            try:
                lock_fd = open_(os.O_RDONLY)
            except PidFileError as exc:
                os.close(write_fd)
                if isinstance(exc.__cause__, FileNotFoundError):
                    continue  # a holder released (unlinked) it between the two opens
                raise
            except BaseException:
                os.close(write_fd)
                raise
            a, b = os.fstat(lock_fd), os.fstat(write_fd)
            if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino):
                return lock_fd, write_fd
            os.close(lock_fd)  # replaced between the two opens: again
            os.close(write_fd)

    def _lock(self, timeout: float, dir_fd: int | None, service_uid: int | None) -> None:
        _warn_if_networked(self.path)
        deadline = time.monotonic() + timeout
        delay = 0.001
        while True:
            fd, write_fd = self._open_pair(dir_fd, service_uid)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(write_fd)
                if time.monotonic() >= deadline:
                    self._raise_already_running(fd)
                os.close(fd)
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
                continue
            except BaseException:
                os.close(fd)
                os.close(write_fd)
                raise
            if self._still_ours(fd, dir_fd):
                break
            os.close(fd)  # unlinked or replaced while we waited: start over
            os.close(write_fd)
        try:
            self._take_over(fd, write_fd, service_uid)
        except BaseException:
            os.close(fd)
            os.close(write_fd)
            raise
        self.fd, self.write_fd = fd, write_fd

    def _raise_already_running(self, fd: int) -> None:
        try:
            pid: int | None = _holder_pid(fd, self.path, os.fstat(fd))
        except PidFileError:
            pid = None
        finally:
            os.close(fd)
        raise AlreadyRunning(self.path, pid)

    def _still_ours(self, fd: int, dir_fd: int | None = None) -> bool:
        """After locking, the path must still name the locked inode.

        Otherwise a holder that unlinked the file on exit and a newcomer that
        created a new one could both believe they hold it (filelock #574).
        """
        st = os.fstat(fd)
        name = self.path if dir_fd is None else os.path.basename(self.path)
        try:
            now = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return st.st_nlink > 0 and (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)

    def _take_over(self, fd: int, write_fd: int, service_uid: int | None = None) -> None:
        st = os.fstat(fd)
        euid = os.geteuid()
        if st.st_nlink > 1:
            raise PidFileError(self.path, "has other hard links; refusing to write to it")
        if st.st_uid != euid:
            # A file the service user left in its own directory (python-daemon
            # wrote its pidfile after the privilege drop): root takes it over,
            # so that its user can no longer write another PID into it.
            if euid != 0 or st.st_uid != service_uid:
                raise PidFileError(self.path, f"is owned by uid {st.st_uid}, not {euid}; refusing to use it")
            os.fchown(write_fd, 0, 0)
        # O_CREAT's mode is filtered by the umask, which may be 0 or 077.
        os.fchmod(write_fd, self.mode)
        os.ftruncate(write_fd, 0)

    def write(self, pid: int) -> None:
        """Write ``PID\\n`` into the locked file, then close the write fd:
        from then on nobody holding our fds can change the PID."""
        self.fileno()
        write_fd, self.write_fd = self.write_fd, None
        if write_fd is None:
            raise ValueError("pidfile was already written")
        try:
            os.ftruncate(write_fd, 0)
            os.pwrite(write_fd, b"%d\n" % pid, 0)
        finally:
            os.close(write_fd)
        self.pid = pid

    def release(self) -> None:
        """Remove the file (if still ours) and drop the lock.

        A forked copy of this object, in any process but the writer, only
        closes its fds: the lock stays with the writer. A writer that may no
        longer unlink (it dropped its privileges, the directory is root's,
        the filesystem is read-only) leaves the file: with the lock gone it
        is stale, which is all anyone reads from it (issue 9, item 17).
        """
        fd, self.fd = self.fd, None
        write_fd, self.write_fd = self.write_fd, None
        if write_fd is not None:
            os.close(write_fd)
        if fd is None:
            return
        try:
            if self.pid == os.getpid() and self._still_ours(fd):
                os.unlink(self.path)  # while we still hold the lock
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
        finally:
            os.close(fd)
            if self.pid == os.getpid():
                self.pid = None

    def __enter__(self) -> PidFile:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
