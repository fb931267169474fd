"""Pidfiles that cannot go stale and cannot be tricked.

Liveness is the flock on the file, held for the daemon's whole life and
freed by the kernel when it dies, never the file's existence and never
``kill(pid, 0)``. The file holds exactly ``PID\\n``, the format systemd's
PIDFile=, start-stop-daemon and monitoring tools read. Reading it and
telling who holds it is :mod:`daemonkit.pidread`'s part.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time

from . import _posix, safedir
from .errors import AlreadyRunning, PidFileError
from .pidread import holder_pid, is_running, lock_holder, parse_pid, read_pid, untrusted

TYPE_CHECKING = False  # see daemonkit/__init__.py
if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "PidFile",
    "is_running",
    "lock_holder",
    "parse_pid",
    "read_pid",
    "remove_stale",
    "untrusted",
]


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
            pid: int | None = holder_pid(fd, self.path, os.fstat(fd))
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
