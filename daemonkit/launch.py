"""The one way daemonkit forks a daemon, and the launcher's wait for it.

::

    launcher ──fork──▶ watcher (setsid) ──fork──▶ daemon
       ▲                  │                          │
       └──── status ──────┘                          │
       └──── channel ────────────────────────────────┘
       ──── lifeline ───▶ watcher

Three pipes, one message per line:

``channel`` (daemon → launcher)
    ``EXEC``                     the daemon is about to exec a command
    ``READY``                    startup is done
    ``ERROR <status> <message>`` startup failed; the launcher exits <status>
``status`` (watcher → launcher)
    ``PID <pid>``                the daemon was forked
    ``LEFT <pid> ...``           the daemon exited, but processes it started
                                 live on (a program that forks itself into
                                 the background); the watcher stops them
    ``EXIT <code>``              the daemon exited (code < 0: killed by -code)
``lifeline`` (launcher → watcher)
    one byte dismisses the watcher once the daemon is ready; end of file
    without it means the launcher died, and the watcher stops the
    half-started daemon, so that nothing is left half-done.

The watcher is the session leader, and the daemon can therefore never
regain a controlling terminal (daemon(7), the second fork). It exits once
dismissed; the daemon is then re-parented to init like any daemon.
Where the kernel allows, it is also a child subreaper, so processes that
the daemon leaves behind come to it and can be found.
"""

from __future__ import annotations

import os
import sys

from . import _posix
from .errors import StartupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

#: How long a half-started daemon gets to exit after SIGTERM, and then after
#: SIGKILL, when a start is abandoned (timeout, Ctrl-C, a dead launcher).
GRACE = 2.0


class Channel:
    """The daemon's end of the readiness pipe. Sends are best-effort: a
    launcher that is gone (killed, or timed out) must not kill the daemon."""

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd
        # A child the daemon forks inherits the fd, but only the daemon
        # speaks for the start: a child's exit must not fail it.
        self.owner = os.getpid()

    def send(self, line: str) -> None:
        if self.fd is None or os.getpid() != self.owner:
            return
        try:
            os.write(self.fd, (line.replace("\n", " ") + "\n").encode("utf-8", "replace"))
        except OSError:
            pass

    def ready(self) -> None:
        self.send("READY")
        self.close()

    def fail(self, status: int, message: str) -> None:
        self.send(f"ERROR {status or 1} {message}")
        self.close()

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None and os.getpid() == self.owner:
            os.close(fd)


def flush_std_streams() -> None:
    """Flush before forking, so buffered output is printed once, not twice
    (by the launcher and again by the daemon) and not lost."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass


class Forked:
    """The launcher's view of a forked daemon: the two pipes it reads and
    the lifeline it holds."""

    def __init__(self, watcher: int, channel: int, status: int, lifeline: int) -> None:
        self.watcher, self.channel, self.status, self.lifeline = watcher, channel, status, lifeline
        self.pid = 0  # the daemon's, once the watcher has said it

    def dismiss(self) -> None:
        """Release the watcher (the daemon is ready), reap it, close the pipes."""
        if self.lifeline >= 0:
            try:
                os.write(self.lifeline, b"x")
            except OSError:
                pass
        self.close()

    def close(self) -> None:
        """Close the pipes and reap the watcher. Without the dismissing byte
        the watcher takes the lifeline's end as the launcher's death and
        stops the daemon."""
        for fd in (self.lifeline, self.channel, self.status):
            if fd >= 0:
                os.close(fd)
        self.lifeline = self.channel = self.status = -1
        if self.watcher:
            os.waitpid(self.watcher, 0)
            self.watcher = 0


def fork() -> Forked | Channel:
    """Double-fork through a watcher: a :class:`Forked` in the launcher, the
    daemon's :class:`Channel` in the daemon. The watcher never returns."""
    flush_std_streams()
    channel_r, channel_w = os.pipe()  # O_CLOEXEC: an exec closes the channel
    status_r, status_w = os.pipe()
    lifeline_r, lifeline_w = os.pipe()
    watcher = os.fork()
    if watcher:
        for fd in (channel_w, status_w, lifeline_r):
            os.close(fd)
        return Forked(watcher, channel_r, status_r, lifeline_w)
    try:
        for fd in (channel_r, status_r, lifeline_w):
            os.close(fd)
        os.setsid()
        # Before the daemon's fork, not after: a command that forks itself
        # away at once (`sh -c 'server &'`) would orphan its server to init
        # before we could see it.
        _posix.become_subreaper()
        daemon = os.fork()
        if daemon == 0:
            os.close(status_w)
            os.close(lifeline_r)
            return Channel(channel_w)
        os.close(channel_w)
        # The watcher keeps nothing the launcher had open: not the pidfile's
        # lock (it is no holder), and not a socket the launcher listens on,
        # which would pass for the daemon's own in tcp:/unix: readiness.
        _posix.close_fds_except({status_w, lifeline_r})
        os.write(status_w, b"PID %d\n" % daemon)
        _watch(daemon, status_w, lifeline_r)
    except BaseException:
        pass
    os._exit(0)


def _watch(daemon: int, status_w: int, lifeline_r: int) -> None:
    """In the watcher: report the daemon's exit, or stop it if the launcher dies."""
    import select

    pidfd = _posix.pidfd_open(daemon)
    poller = select.poll()
    poller.register(lifeline_r, select.POLLIN)
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    while True:
        events = poller.poll(None if pidfd is not None else 10)
        code = _reap(daemon)
        if code is not None:
            left = _posix.children_of(os.getpid())
            if left:
                os.write(status_w, ("LEFT " + " ".join(map(str, left)) + "\n").encode())
                _stop_all(left)
            os.write(status_w, b"EXIT %d\n" % code)
            return
        if any(fd == lifeline_r for fd, _ in events):
            if not os.read(lifeline_r, 1):  # the launcher died: abandon the start
                _stop_all([daemon])
            return


def _reap(daemon: int) -> int | None:
    """Reap every child that has exited; the daemon's exit code once it has."""
    code = None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return code
        if pid == 0:
            return code
        if pid == daemon:
            code = os.waitstatus_to_exitcode(status)


def _stop_all(pids: Sequence[int]) -> None:
    """TERM, then KILL, each process and the group it leads or belongs to."""
    from .kill import Target, stop_quietly

    for pid in pids:
        try:
            with Target(pid) as target:
                stop_quietly(target, GRACE)
        except ProcessLookupError:
            pass


def exited_message(code: int) -> StartupError:
    """What a daemon that exited before it was ready tells the launcher."""
    if code < 0:
        from .signals import signal_name

        return StartupError(f"killed by {signal_name(-code)} before it was ready", 128 - code)
    return StartupError(f"exited with status {code} before it was ready", code)
