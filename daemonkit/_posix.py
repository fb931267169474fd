"""Everything that differs between POSIX systems, behind capability flags.

This is the only module that knows about /proc, pidfds and close_range.
Every helper keeps one signature across systems; where the fast path is
missing it falls back to something slower that still works.
"""

from __future__ import annotations

import errno
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

# Numbers POSIX (XSI) fixes on every system, for default arguments and
# comparisons: the signal module's enums cost ~3 ms to import, which
# `import daemonkit` should not make a daemon pay; modules import `signal`
# where they send or handle one.
SIGHUP, SIGINT, SIGKILL, SIGTERM = 1, 2, 9, 15

# Linux 5.3+ and Python 3.9+: a pidfd names one process, never its PID's
# next owner, so a signal sent through it cannot hit a reused PID.
HAS_PIDFD = hasattr(os, "pidfd_open") and hasattr(os, "waitid")


def _kernel_at_least(major: int, minor: int) -> bool:
    try:
        parts = os.uname().release.split(".")
        return (int(parts[0]), int(parts[1].split("-")[0])) >= (major, minor)
    except (ValueError, IndexError):
        return False


# os.closerange() uses the close_range syscall from Python 3.10 on Linux 5.9+;
# with it, closing every inherited fd is one syscall per gap between kept fds.
HAS_CLOSE_RANGE = sys.platform.startswith("linux") and sys.version_info >= (3, 10) and _kernel_at_least(5, 9)
HAS_PROC = os.path.isdir("/proc/self/fd") and os.path.exists("/proc/self/stat")
# Where /proc is missing (BSD, macOS) /dev/fd still lists the open fds.
FD_DIR = "/proc/self/fd" if HAS_PROC else ("/dev/fd" if os.path.isdir("/dev/fd") else None)


def _max_fd() -> int:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = max(soft, hard)
    # An unlimited hard limit would make the fallback loop endless; the
    # kernel's default ceiling (fs.nr_open) is 2**20.
    return limit if 0 < limit < 2**20 else 2**20


def close_fds_except(keep: Iterable[int], lowest: int = 3) -> None:
    """Close every fd >= ``lowest`` that is not in ``keep``.

    Cost is O(number of open fds), never O(RLIMIT_NOFILE): close_range over
    the gaps, else the list in /proc/self/fd, else (last resort) a loop.
    """
    kept = sorted({fd for fd in keep if fd >= lowest})
    if HAS_CLOSE_RANGE:
        start = lowest
        for fd in kept:
            if fd > start:
                os.closerange(start, fd)
            start = fd + 1
        os.closerange(start, _max_fd())
        return
    if FD_DIR is not None:
        keep_set = set(kept)
        for name in os.listdir(FD_DIR):
            fd = int(name)
            if fd >= lowest and fd not in keep_set:
                try:
                    os.close(fd)
                except OSError:  # the directory's own fd, already closed
                    pass
        return
    keep_set = set(kept)
    for fd in range(lowest, _max_fd()):
        if fd not in keep_set:
            try:
                os.close(fd)
            except OSError:
                pass


def thread_count() -> int:
    """Threads in this process, including ones Python did not start."""
    if HAS_PROC:
        return len(os.listdir("/proc/self/task"))
    threading = sys.modules.get("threading")
    return threading.active_count() if threading is not None else 1


def proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat from field 3 (state) on, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses.
    return data[data.rindex(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """The process start time in clock ticks since boot, None if unknown."""
    if not HAS_PROC:
        return None
    fields = proc_stat(pid)
    return int(fields[19]) if fields else None


def start_time(pid: int) -> float | None:
    """When ``pid`` started, in seconds since the epoch; None if unknown.

    Precise to a clock tick (10 ms): the boot time comes from /proc/uptime,
    not from /proc/stat's btime, which is rounded to the second.
    """
    import time

    ticks = start_ticks(pid)
    if ticks is None:
        return None
    try:
        with open("/proc/uptime", "rb") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")


def is_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie.

    kill(pid, 0) alone answers yes for zombies, which a slow init may leave
    for seconds, so /proc's state is consulted where it exists.
    """
    if HAS_PROC:
        fields = proc_stat(pid)
        return fields is not None and fields[0] not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def may_inspect(pid: int) -> bool:
    """Whether we may read the fds of ``pid`` (our own, or we are root);
    False where there is no /proc."""
    if not HAS_PROC:
        return False
    try:
        os.listdir(f"/proc/{pid}/fd")
    except PermissionError:
        return False
    except OSError:
        return True  # gone: nothing hidden
    return True


def real_uid(pid: int) -> int | None:
    """The real uid ``pid`` runs as; None if unknown."""
    try:
        return os.stat(f"/proc/{pid}").st_uid if HAS_PROC else None
    except OSError:
        return None


def _processes_where(field: int, value: int) -> list[int]:
    """Live processes whose /proc/PID/stat field (as proc_stat numbers them:
    1 ppid, 2 pgrp, 3 session) is ``value``; [] without /proc."""
    if not HAS_PROC:
        return []
    found = []
    wanted = str(value)
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = proc_stat(int(name))
            if fields is not None and fields[field] == wanted and fields[0] not in ("Z", "X"):
                found.append(int(name))
    return found


def children_of(parent: int) -> list[int]:
    """Live children of ``parent`` (a subreaper's include the orphans it
    adopted), from /proc; [] without it."""
    if not HAS_PROC:
        return []
    try:  # CONFIG_PROC_CHILDREN: one file instead of a scan of /proc
        with open(f"/proc/{parent}/task/{parent}/children", "rb") as f:
            return [int(word) for word in f.read().split() if is_alive(int(word))]
    except OSError:
        return _processes_where(1, parent)


def session_members(sid: int) -> list[int]:
    """Live processes in session ``sid`` (from /proc; [] without it)."""
    return _processes_where(3, sid)


def group_members(pgid: int) -> list[int]:
    """Live processes in process group ``pgid`` (from /proc; [] without it)."""
    return _processes_where(2, pgid)


def descends_from(pid: int, ancestor: int) -> bool:
    """Whether ``pid`` is ``ancestor`` or one of its descendants now (from
    /proc's parent links; False without /proc, or once a link is gone)."""
    seen = set()
    while pid != ancestor:
        fields = proc_stat(pid) if HAS_PROC else None
        if fields is None or pid in seen or int(fields[1]) <= 1:
            return False
        seen.add(pid)
        pid = int(fields[1])
    return True


def socket_inodes(pids: Iterable[int]) -> set[int]:
    """Inodes of the sockets the processes ``pids`` hold open."""
    inodes = set()
    for pid in pids:
        try:
            names = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for name in names:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{name}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(int(link[8:-1]))
    return inodes


def listening_inodes(kind: str, address: object) -> set[int] | None:
    """Inodes of the listening sockets on ``address``: a TCP port number
    (any local address) or a unix socket path. None where /proc cannot tell."""
    if not HAS_PROC:
        return None
    inodes: set[int] = set()
    if kind == "tcp":
        # "sl local_address rem_address st ... inode": a local address ending
        # in :PORT (hex), state 0A (LISTEN), the inode tenth. The tables can
        # hold thousands of lines: only the ones naming the port are split.
        port = b":%04X " % int(str(address))
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in _lines_with(table, port):
                fields = line.split()
                if len(fields) > 9 and fields[1].endswith(port.strip()) and fields[3] == b"0A":
                    inodes.add(int(fields[9]))
        return inodes
    path = str(address).encode()
    for line in _lines_with("/proc/net/unix", path):
        # Num RefCount Protocol Flags Type St Inode Path; flag 0x10000 is __SO_ACCEPTCON
        fields = line.split()
        if len(fields) > 7 and fields[7] == path and int(fields[3], 16) & 0x10000:
            inodes.add(int(fields[6]))
    return inodes


def _lines_with(path: str, needle: bytes) -> list[bytes]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    return [line for line in data.split(b"\n") if needle in line]


def signal_disposition(pid: int, sig: int) -> str | None:
    """ "caught", "ignored" or "default" for ``sig`` in ``pid`` (from
    /proc/PID/status SigCgt and SigIgn); None where that cannot be read."""
    if not HAS_PROC:
        return None
    masks = {}
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                key, _, value = line.partition(b":")
                if key in (b"SigCgt", b"SigIgn"):
                    masks[key] = int(value.strip(), 16)
    except (OSError, ValueError):
        return None
    bit = 1 << (sig - 1)
    if masks.get(b"SigCgt", 0) & bit:
        return "caught"
    if masks.get(b"SigIgn", 0) & bit:
        return "ignored"
    return "default"


# prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants are re-parented to us
# instead of init (Linux 3.4+), so they can be found and reaped.
HAS_SUBREAPER = sys.platform.startswith("linux")
_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make this process a child subreaper; False where that is unsupported."""
    if not HAS_SUBREAPER:
        return False
    import ctypes

    try:
        return int(ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def pid_max() -> int:
    try:
        with open("/proc/sys/kernel/pid_max", "rb") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 2**22  # Linux's ceiling; other systems stay far below it


def flock_held(dev: int, ino: int) -> bool | None:
    """Whether someone holds a flock on the file (dev, ino); None if unknown.

    /proc/locks answers without taking a lock ourselves; probing with
    flock(LOCK_NB) would, for an instant, make a starting daemon fail.
    """
    if not HAS_PROC:
        return None
    wanted = _lock_id(dev, ino)
    try:
        with open("/proc/locks", "rb") as f:
            lines = f.read().decode("ascii", "replace").splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"; "->" marks a waiter.
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted:
            return True
    return False


def _lock_id(dev: int, ino: int) -> str:
    """How /proc/locks and /proc/PID/fdinfo name a file: "fe:00:5678"."""
    return f"{os.major(dev):02x}:{os.minor(dev):02x}:{ino}"


def flock_holders(dev: int, ino: int) -> list[int]:
    """Every process with an fd on the flock of the file (dev, ino).

    A flock belongs to an open file description, which children inherit
    with their fds. /proc/PID/fdinfo shows the lock on each fd that shares
    it, so this finds all of them, and never a process that merely opened
    the file for reading. Empty where /proc cannot tell.
    """
    if not HAS_PROC:
        return []
    return [int(name) for name in os.listdir("/proc") if name.isdigit() and holds_flock(int(name), dev, ino)]


def holds_flock(pid: int, dev: int, ino: int) -> bool:
    """Whether ``pid`` has an fd on the flock of the file (dev, ino)."""
    wanted = _lock_id(dev, ino)
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:  # gone, or not ours to look at
        return False
    for fd in fds:
        try:
            st = os.stat(f"/proc/{pid}/fd/{fd}")
            if (st.st_dev, st.st_ino) != (dev, ino):
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                if any(line.startswith("lock:") and "FLOCK" in line and wanted in line for line in f):
                    return True
        except OSError:
            continue
    return False


def pidfd_open(pid: int) -> int | None:
    """A pidfd for ``pid``, None where pidfds are unsupported.

    Raises ProcessLookupError if the process is gone.
    """
    if not HAS_PIDFD:
        return None
    try:
        return os.pidfd_open(pid)
    except OSError as exc:
        if exc.errno in (errno.ENOSYS, errno.EPERM):  # old kernel or seccomp
            return None
        raise


def send_signal(pid: int, sig: int, pidfd: int | None) -> None:
    """Signal through the pidfd when there is one, so a reused PID is safe."""
    if pidfd is not None:
        import signal

        signal.pidfd_send_signal(pidfd, sig)
    else:
        os.kill(pid, sig)


def wait_exit(pid: int, pidfd: int | None, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``pid`` to exit; True if it did.

    With a pidfd the kernel wakes us at the exit; elsewhere we poll.
    """
    import time

    if pidfd is not None:
        import select

        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(max(0, int(timeout * 1000))))
    deadline = time.monotonic() + timeout
    delay = 0.001
    while is_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return True


# flock(2) on these is emulated with byte-range locks, not atomic with
# O_CREAT, or local to one client: another host can hold "the same" lock.
NETWORK_FILESYSTEMS = ("nfs", "cifs", "smb", "fuse", "9p", "ceph", "glusterfs", "lustre", "afs")


def filesystem_type(path: str, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The type of the filesystem holding ``path`` (Linux); None if unknown."""
    try:
        with open(mountinfo, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best, found = -1, None
    for line in lines:
        fields, _, tail = line.partition(" - ")
        parts = fields.split()
        if len(parts) < 5 or not tail:
            continue
        mount_point = parts[4].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= best:  # later mounts stack on earlier ones
            best, found = len(mount_point), tail.split()[0]
    return found


def flock_held_by(pid: int, dev: int, ino: int) -> bool | None:
    """Whether ``pid`` has an fd on the flock of the file (dev, ino): True,
    False, or None where we cannot tell (no /proc, or not ours to look at).

    A process that merely opened the file (a ``tail -f``, a log shipper) is
    not taken for the holder.
    """
    if not HAS_PROC:
        return None
    try:
        os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return False
    except PermissionError:
        return None
    except OSError:
        return False
    return holds_flock(pid, dev, ino)
