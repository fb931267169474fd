"""Open files as root without being tricked by other users.

Whoever can write to (or owns) a directory on the way to a pidfile can swap
what follows for a link to a file of root's (CVE-2018-21269, systemd's
CHASE_SAFE). Checking every directory with stat() and then opening the path
by name leaves a window between the two. Here the path is walked one
component at a time: each directory is opened relative to the one before,
with O_NOFOLLOW, and checked through its own fd; symlinks are read and
followed by hand; the file is then opened relative to the last fd. What
is checked is what is used.

One rule serves every file daemonkit opens as root: the pidfile, log and
stdout/stderr files, start records (see docs/security.md).
"""

from __future__ import annotations

import errno
import os
import stat

from .errors import PidFileError, UnsafeFileError

TYPE_CHECKING = False  # see __init__.py
if TYPE_CHECKING:
    from typing import Callable

    from .errors import DaemonError

    #: Builds the exception for (path, reason): PidFileError for a pidfile.
    ErrorFactory = Callable[[str, str], DaemonError]

# O_PATH (Linux) opens a directory without needing read permission on it.
_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_SYMLINKS = 40  # as the kernel's path walk


def open_trusted_directory(
    path: str, *, service_uid: int | None = None, error: ErrorFactory = PidFileError
) -> int:
    """An fd of the directory holding the absolute ``path``, checked from /.

    Every directory on the way must belong to root, or to ``service_uid``
    (the user the daemon is about to become, who may own its log or run
    directory), and be writable by nobody else, unless sticky (such as
    /tmp). A symlink is followed only if root owns it, since its owner could
    point it elsewhere at any time. Raises ``error(path, reason)``
    (:class:`PidFileError` by default) naming the first unsafe or missing
    directory.
    """
    trusted = (0,) if service_uid is None else (0, service_uid)
    pending = os.path.dirname(path).split("/")
    fd = os.open("/", _FLAGS)
    current, links = "/", 0
    try:
        _check(fd, current, path, trusted, error)
        while pending:
            part = pending.pop(0)
            if part in ("", "."):
                continue
            target = _symlink_target(fd, part, current, path, error)
            if target is not None:
                links += 1
                if links > _MAX_SYMLINKS:
                    raise error(path, f"too many symbolic links below {current}")
                pending[:0] = target.split("/")
                if target.startswith("/"):
                    fd = _replace(fd, os.open("/", _FLAGS))
                    current = "/"
                continue
            try:
                fd = _replace(fd, os.open(part, _FLAGS, dir_fd=fd))
            except OSError as exc:
                raise _walk_error(path, os.path.join(current, part), exc, error) from exc
            current = os.path.normpath(os.path.join(current, part))
            _check(fd, current, path, trusted, error)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _replace(old: int, new: int) -> int:
    os.close(old)
    return new


def _check(fd: int, directory: str, path: str, trusted: tuple[int, ...], error: ErrorFactory) -> None:
    st = os.fstat(fd)
    writable_by_others = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX
    if st.st_uid not in trusted or writable_by_others:
        who = f"owned by uid {st.st_uid}" if st.st_uid not in trusted else "writable by other users"
        raise error(path, f"directory {directory} is {who}; refusing as root")


def _symlink_target(dir_fd: int, name: str, directory: str, path: str, error: ErrorFactory) -> str | None:
    """The target of ``name`` if it is a symlink root owns, None if it is not a symlink."""
    if name == "..":
        return None
    where = os.path.join(directory, name)
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError as exc:
        raise _walk_error(path, where, exc, error) from exc
    if not stat.S_ISLNK(st.st_mode):
        return None
    if st.st_uid != 0:
        raise error(path, f"directory {where} is a symbolic link owned by uid {st.st_uid}; refusing as root")
    return os.readlink(name, dir_fd=dir_fd)


def _walk_error(path: str, directory: str, exc: OSError, error: ErrorFactory) -> DaemonError:
    if exc.errno == errno.ENOENT:
        return error(path, f"directory {directory} does not exist")
    if exc.errno == errno.ENOTDIR:
        return error(path, f"{directory} is not a directory")
    if exc.errno == errno.ELOOP:  # a symlink now, where there was a directory
        return error(path, f"directory {directory} changed while it was checked; refusing as root")
    return error(path, f"directory {directory}: {exc.strerror or exc}")


# O_NONBLOCK: a FIFO planted in place of the file must not block the open
# (iodine PR #133); O_NOFOLLOW: nor may a symlink redirect it (CVE-2020-14367).
_FILE_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)


def open_file(
    path: str,
    flags: int,
    mode: int = 0o644,
    *,
    service_uid: int | None = None,
    error: ErrorFactory = UnsafeFileError,
    devices: bool = False,
) -> int:
    """Open the regular file at the absolute ``path``; return its fd (O_CLOEXEC).

    Never follows a symlink at the last component, never blocks on a FIFO,
    and refuses anything but a regular file. As root, also: the directories
    on the way pass :func:`open_trusted_directory` (root's or
    ``service_uid``'s, writable by no one else unless sticky), the file is
    opened relative to the last of them, and a file with other hard links,
    or owned by anyone but root, us or ``service_uid`` (planted in a sticky
    directory), is refused. With ``devices``, a character device (such as
    /dev/null or a console given as a log) is accepted too: only root can
    create one, so none can have been planted. The fd keeps O_NONBLOCK,
    which regular files ignore. Raises ``error(path, reason)``.
    """
    dir_fd = open_trusted_directory(path, service_uid=service_uid, error=error) if os.geteuid() == 0 else None
    try:
        return open_in_directory(
            dir_fd, path, flags, mode, service_uid=service_uid, error=error, devices=devices
        )
    finally:
        if dir_fd is not None:
            os.close(dir_fd)


def open_in_directory(
    dir_fd: int | None,
    path: str,
    flags: int,
    mode: int = 0o644,
    *,
    service_uid: int | None = None,
    error: ErrorFactory = UnsafeFileError,
    devices: bool = False,
) -> int:
    """:func:`open_file`'s last step: open the file named by ``path``'s last
    component in ``dir_fd`` (from :func:`open_trusted_directory`; None: by
    its whole path, as a user other than root does), and check it."""
    name = os.path.basename(path)
    if name in ("", ".", ".."):
        raise error(path, "is not a file name")
    try:
        fd = os.open(path if dir_fd is None else name, flags | _FILE_FLAGS, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            # The kernel may say EACCES, not ELOOP, for an O_CREAT open of
            # another user's symlink or file in a sticky directory.
            _explain_denied(dir_fd, path, error)
        raise _open_error(path, exc, error) from exc
    try:
        _check_file(fd, path, os.geteuid() == 0, service_uid, error, devices)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _explain_denied(dir_fd: int | None, path: str, error: ErrorFactory) -> None:
    try:
        name = path if dir_fd is None else os.path.basename(path)
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise error(path, "is a symbolic link; refusing to follow it")
    if os.geteuid() == 0 and st.st_uid != 0:
        raise error(path, f"is owned by uid {st.st_uid}, who could have planted it; refusing as root")


def _check_file(
    fd: int, path: str, as_root: bool, service_uid: int | None, error: ErrorFactory, devices: bool
) -> None:
    st = os.fstat(fd)
    if devices and stat.S_ISCHR(st.st_mode) and st.st_uid == 0:
        return
    if not stat.S_ISREG(st.st_mode):
        raise error(path, "is not a regular file; refusing to use it")
    if not as_root:
        return
    if st.st_nlink > 1:  # a hard link to a file of root's (protected_hardlinks=0)
        raise error(path, "has other hard links; refusing to use it as root")
    if st.st_uid not in (0, os.geteuid(), service_uid):
        raise error(path, f"is owned by uid {st.st_uid}, who could have planted it; refusing as root")


def _open_error(path: str, exc: OSError, error: ErrorFactory) -> DaemonError:
    if exc.errno == errno.ELOOP:
        return error(path, "is a symbolic link; refusing to follow it")
    if exc.errno == errno.EISDIR:
        return error(path, "is a directory")
    if exc.errno == errno.ENXIO:  # O_WRONLY|O_NONBLOCK on a FIFO nobody reads
        return error(path, "is not a regular file; refusing to use it")
    if exc.errno == errno.ENOENT:
        return error(path, f"directory {os.path.dirname(path)} does not exist")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return error(path, f"cannot open: {exc.strerror}")
    return error(path, exc.strerror or str(exc))
