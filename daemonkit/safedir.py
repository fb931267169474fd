"""Open a pidfile's directory as root without being tricked by other users.

Whoever can write to (or owns) a directory on the way to a pidfile can swap
what follows for a link to a file of root's (CVE-2018-21269, systemd's
CHASE_SAFE). Checking every directory with stat() and then opening the path
by name leaves a window between the two. Here the path is walked one
component at a time: each directory is opened relative to the one before,
with O_NOFOLLOW, and checked through its own fd; symlinks are read and
followed by hand; the pidfile is then opened relative to the last fd. What
is checked is what is used.
"""

from __future__ import annotations

import errno
import os
import stat

from .errors import PidFileError

# O_PATH (Linux) opens a directory without needing read permission on it.
_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_SYMLINKS = 40  # as the kernel's path walk


def open_trusted_directory(path: str) -> int:
    """An fd of the directory holding the absolute ``path``, checked from /.

    Every directory on the way must belong to root and be writable by nobody
    else, unless sticky (such as /tmp). A symlink is followed only if root
    owns it, since its owner could point it elsewhere at any time. Raises
    :class:`PidFileError` naming the first unsafe or missing directory.
    """
    pending = os.path.dirname(path).split("/")
    fd = os.open("/", _FLAGS)
    current, links = "/", 0
    try:
        _check(fd, current, path)
        while pending:
            part = pending.pop(0)
            if part in ("", "."):
                continue
            target = _symlink_target(fd, part, current, path)
            if target is not None:
                links += 1
                if links > _MAX_SYMLINKS:
                    raise PidFileError(path, f"too many symbolic links below {current}")
                pending[:0] = target.split("/")
                if target.startswith("/"):
                    fd = _replace(fd, os.open("/", _FLAGS))
                    current = "/"
                continue
            try:
                fd = _replace(fd, os.open(part, _FLAGS, dir_fd=fd))
            except OSError as exc:
                raise _walk_error(path, os.path.join(current, part), exc) from exc
            current = os.path.normpath(os.path.join(current, part))
            _check(fd, current, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _replace(old: int, new: int) -> int:
    os.close(old)
    return new


def _check(fd: int, directory: str, path: str) -> None:
    st = os.fstat(fd)
    writable_by_others = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX
    if st.st_uid != 0 or writable_by_others:
        who = f"owned by uid {st.st_uid}" if st.st_uid != 0 else "writable by other users"
        raise PidFileError(path, f"directory {directory} is {who}; refusing as root")


def _symlink_target(dir_fd: int, name: str, directory: str, path: str) -> str | None:
    """The target of ``name`` if it is a symlink root owns, None if it is not a symlink."""
    if name == "..":
        return None
    where = os.path.join(directory, name)
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError as exc:
        raise _walk_error(path, where, exc) from exc
    if not stat.S_ISLNK(st.st_mode):
        return None
    if st.st_uid != 0:
        raise PidFileError(
            path, f"directory {where} is a symbolic link owned by uid {st.st_uid}; refusing as root"
        )
    return os.readlink(name, dir_fd=dir_fd)


def _walk_error(path: str, directory: str, exc: OSError) -> PidFileError:
    if exc.errno == errno.ENOENT:
        return PidFileError(path, f"directory {directory} does not exist")
    if exc.errno == errno.ENOTDIR:
        return PidFileError(path, f"{directory} is not a directory")
    if exc.errno == errno.ELOOP:  # a symlink now, where there was a directory
        return PidFileError(path, f"directory {directory} changed while it was checked; refusing as root")
    return PidFileError(path, f"directory {directory}: {exc.strerror or exc}")
