"""The supervisor's view of processes and files: the app's descendants,
signalling all of them, and the pidfile's inherited lock."""

from __future__ import annotations

import errno
import os

from . import _posix


def kill_quietly(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:  # gone, or not ours (it switched user by itself)
        pass


def descendants(root: int) -> list[int]:
    """Every live descendant of ``root`` (a subreaper's include the orphans
    it adopted), from /proc."""
    found, todo = [], [root]
    while todo:
        for child in _posix.children_of(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def signal_tree(app: int, root: int, sig: int) -> None:
    """``sig`` to the app's process group (0: no app), then to every other
    descendant of ``root``: those that left the group with setsid()."""
    if app:
        try:
            os.killpg(app, sig)
        except OSError:
            kill_quietly(app, sig)
    for pid in descendants(root):
        try:
            if app and os.getpgid(pid) == app:
                continue  # had it already
        except OSError:
            continue
        kill_quietly(pid, sig)


def dev_ino(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def find_lock_fd(pidfile: str) -> int:
    """The pidfile's lock fd inherited across the exec, made close-on-exec
    (the app must never hold the lock); -1 if there is none."""
    try:
        wanted = dev_ino(os.stat(pidfile, follow_symlinks=False))
    except OSError:
        return -1
    names = os.listdir(_posix.FD_DIR) if _posix.FD_DIR else [str(fd) for fd in range(3, 256)]
    for name in names:
        fd = int(name)
        try:
            if fd > 2 and dev_ino(os.fstat(fd)) == wanted:
                os.set_inheritable(fd, False)
                return fd
        except OSError:
            continue
    return -1


def remove_pidfile(pidfile: str, lock_fd: int) -> None:
    """Unlink only while holding the lock, and only our own inode."""
    if lock_fd < 0:
        return
    try:
        if dev_ino(os.stat(pidfile, follow_symlinks=False)) == dev_ino(os.fstat(lock_fd)):
            os.unlink(pidfile)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
