"""Standard streams of a daemon: /dev/null, a file, or a log path that is
reopened on SIGHUP so that logrotate can move it away.
"""

from __future__ import annotations

import os
import sys

#: What stdin/stdout/stderr accept: None (/dev/null), a path (appended to),
#: a file object or socket (anything with fileno()), or an fd.
TYPE_CHECKING = False  # see daemonkit/__init__.py
if TYPE_CHECKING:
    from typing import IO, Any, Union

    Target = Union[None, str, "os.PathLike[str]", int, IO[Any], Any]


def is_path(target: Any) -> bool:
    return isinstance(target, (str, os.PathLike))


_KINDS = ("stdin file", "stdout file", "stderr file")


def open_path(path: str, fd_no: int, umask: int, service_uid: int | None = None) -> int:
    """Open a stream's file the way every file opened as root is opened
    (safedir.open_file): a log directory the service user owns could
    otherwise hold a symlink that makes root append to any file of its own.
    A character device (/dev/null, a console) is accepted as well as a
    regular file. Raises UnsafeFileError naming the file."""
    from .errors import UnsafeFileError
    from .safedir import open_file

    def error(where: str, reason: str) -> UnsafeFileError:
        return UnsafeFileError(where, reason, _KINDS[fd_no])

    if fd_no == 0:
        fd = open_file(path, os.O_RDONLY, service_uid=service_uid, error=error, devices=True)
    else:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        fd = open_file(path, flags, 0o666 & ~umask, service_uid=service_uid, error=error, devices=True)
    os.set_blocking(fd, True)  # the daemon's stdio, as programs expect it
    return fd


def redirect(
    targets: tuple[Any, Any, Any], umask: int, skip_unset: bool = False, *, service_uid: int | None = None
) -> None:
    """Step 6: make fds 0, 1 and 2 the given targets, /dev/null for None.

    Every fd the process keeps is one of 0-2 afterwards: the /dev/null and
    log fds used for the dup2 are closed again. With ``skip_unset`` a None
    target leaves the stream as it is (supervised mode). Path targets are
    opened by :func:`open_path`; ``service_uid`` is the user the daemon will
    become, whose directories root may trust.
    """
    devnull: int | None = None
    try:
        for fd_no, target in enumerate(targets):
            if target is None:
                if skip_unset:
                    continue
                if devnull is None:
                    devnull = os.open(os.devnull, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
                source, owned = devnull, False
            elif is_path(target):
                source, owned = open_path(os.fspath(target), fd_no, umask, service_uid), True
            else:
                source, owned = int(target.fileno()) if not isinstance(target, int) else target, False
            if source != fd_no:
                os.dup2(source, fd_no)  # dup2 clears O_CLOEXEC on the copy
                if owned:
                    os.close(source)
    finally:
        if devnull is not None and devnull > 2:
            os.close(devnull)
    _line_buffer_files()


def _line_buffer_files() -> None:
    # Python block-buffers a stdout that is not a terminal; a daemon's log
    # line should reach the file when it is written, not at exit.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(line_buffering=True)
            except (ValueError, OSError):
                pass


def reopen(targets: tuple[Any, Any, Any], umask: int) -> None:
    """Reopen the path targets in place (SIGHUP, after logrotate moved them).

    A target that is no longer safe to open (a symlink or another user's
    file now stands at its path) is not reopened: the stream keeps writing
    to the file it had, and one line on stderr says why.
    """
    from .errors import DaemonError

    for fd_no, target in enumerate(targets):
        if fd_no and is_path(target):
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (ValueError, OSError):
                    pass
            try:
                fd = open_path(os.fspath(target), fd_no, umask)
            except DaemonError as exc:
                os.write(2, f"daemonkit: not reopened: {exc}\n".encode())
                continue
            os.dup2(fd, fd_no)
            os.close(fd)


def ensure_std_fds() -> None:
    """Open /dev/null onto any of fds 0-2 that is closed.

    Otherwise the next file we open (the pidfile!) would become fd 0-2 and
    be overwritten by the stdio redirection (monero #6147).
    """
    for fd_no in range(3):
        try:
            os.fstat(fd_no)
        except OSError:
            fd = os.open(os.devnull, os.O_RDWR)
            if fd != fd_no:  # lower fds were open; cannot happen, but be exact
                os.dup2(fd, fd_no)
                os.close(fd)
