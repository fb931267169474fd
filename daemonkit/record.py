"""What ``daemonkit start`` remembers about a daemon, beside its pidfile.

For pidfile ``P.pid`` the record is ``P.json``: the name, the command, the
start options and the start time, so that ``restart`` can start it again the
same way and ``status``/``list`` can show the command. The pidfile itself
stays exactly ``PID\\n``.

``restart`` runs the command a record holds, so a record is code: one that
another user could have written or replaced (in a sticky or shared
directory, through a symlink) would let them run anything as the caller.
A record is believed only if it is a regular file owned by the caller or
root, in a directory only they can write to (issue 9, item 2).
"""

from __future__ import annotations

import errno
import os
import stat

from .errors import RecordError

TYPE_CHECKING = False  # see daemonkit/__init__.py
if TYPE_CHECKING:
    from typing import Any

_MAX_BYTES = 1 << 20
_OPEN_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


def path_for(pidfile: str) -> str:
    base = pidfile[:-4] if pidfile.endswith(".pid") else pidfile
    return base + ".json"


def _trusted_owner(uid: int) -> bool:
    return uid in (0, os.geteuid())


def _open_directory(target: str) -> int:
    """An fd of the record's directory, or RecordError saying why it is not
    to be trusted. As root, every directory on the way is checked too
    (safedir); the record's own directory must not be writable by others
    even when sticky: there, anyone may create a record that is not yet
    there."""
    directory = os.path.dirname(target)
    if os.geteuid() == 0:
        from .safedir import open_trusted_directory

        fd = open_trusted_directory(target, error=RecordError)
    else:
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise _error(target, exc, "cannot open its directory") from exc
    st = os.fstat(fd)
    reason = None
    if not _trusted_owner(st.st_uid):
        reason = f"directory {directory} is owned by uid {st.st_uid}"
    elif st.st_mode & _OTHERS_WRITE:
        reason = f"directory {directory} is writable by other users"
    if reason is not None:
        os.close(fd)
        raise RecordError(target, f"{reason}; a record there could be planted, not trusting it")
    return fd


def check_location(pidfile: str) -> None:
    """RecordError if no record beside ``pidfile`` could be believed (a
    directory other users can write to, or control): say so before starting."""
    os.close(_open_directory(path_for(pidfile)))


def _error(target: str, exc: OSError, doing: str) -> RecordError:
    if exc.errno == errno.ENOENT:
        return RecordError(target, f"{doing}: directory {os.path.dirname(target)} does not exist")
    return RecordError(target, f"{doing}: {exc.strerror or exc}")


def write(pidfile: str, record: dict[str, Any]) -> None:
    """Write atomically: a reader sees the old record or the new one.

    The temporary file is created O_EXCL|O_NOFOLLOW in the checked
    directory (never through a planted file or symlink), under a short name
    of its own (``NAME.json.<pid>.tmp`` may exceed NAME_MAX where
    ``NAME.json`` does not), and renamed over the record. Raises
    :class:`RecordError` naming the record for every failure (a full disk,
    a name too long, a missing or untrusted directory).
    """
    target = path_for(pidfile)
    dir_fd = _open_directory(target)
    temporary = f".{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _OPEN_FLAGS, 0o644, dir_fd=dir_fd)
        except OSError as exc:
            raise _error(target, exc, "cannot write") from exc
        try:
            os.fchmod(fd, 0o644)  # whatever the umask
            with os.fdopen(fd, "w") as f:
                import json  # here: `start` loads it only once its command is ready

                json.dump(record, f, indent=2)
                f.write("\n")
            os.replace(temporary, os.path.basename(target), src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException as exc:
            try:
                os.unlink(temporary, dir_fd=dir_fd)
            except OSError:
                pass
            if isinstance(exc, OSError):
                raise _error(target, exc, "cannot write") from exc
            raise
    finally:
        os.close(dir_fd)


def read(pidfile: str) -> dict[str, Any] | None:
    """The record, or None if there is none or it is unreadable.

    Raises :class:`RecordError` for a record that is not to be believed: a
    symlink, not a regular file, owned by someone other than the caller or
    root, writable by others, or in a directory others can write to.
    """
    target = path_for(pidfile)
    try:
        dir_fd = _open_directory(target)
    except RecordError as exc:
        if isinstance(exc.__cause__, FileNotFoundError) or not os.path.isdir(os.path.dirname(target)):
            return None  # no directory, so no record
        raise
    try:
        try:
            fd = os.open(os.path.basename(target), os.O_RDONLY | _OPEN_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise RecordError(target, "is a symbolic link; not trusting it") from exc
            return None
    finally:
        os.close(dir_fd)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise RecordError(target, "is not a regular file; not trusting it")
        if not _trusted_owner(st.st_uid):
            raise RecordError(target, f"is owned by uid {st.st_uid}, neither you nor root; not trusting it")
        if st.st_mode & _OTHERS_WRITE:
            raise RecordError(target, "is writable by other users; not trusting it")
        try:
            import json

            data = json.loads(f.read(_MAX_BYTES))
        except (OSError, ValueError):
            return None
    return data if isinstance(data, dict) else None
