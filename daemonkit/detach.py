"""fork / setsid / fork, and the readiness channel between launcher and daemon.

The launcher creates a pipe before forking and blocks reading it. The daemon
writes one line per event::

    PID <pid>                  right after the second fork
    READY                      startup is done
    ERROR <status> <message>   startup failed; the launcher exits <status>

EOF before READY or ERROR means the daemon died: the launcher reports it and
exits non-zero (daemon(7) steps 14-15). Nothing else crosses the pipe.
"""

from __future__ import annotations

import os
import sys

from .errors import StartupError


class Channel:
    """The daemon's end of the readiness pipe. Sends are best-effort: a
    launcher that is gone (killed, or timed out) must not kill the daemon."""

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd

    def send(self, line: str) -> None:
        if self.fd is None:
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
        if fd is not None:
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


def fork_daemon(ready_timeout: float | None) -> tuple[int, Channel | None]:
    """Double-fork. Returns ``(daemon_pid, None)`` in the launcher once the
    daemon is ready, and ``(0, channel)`` in the daemon.

    The launcher raises :class:`StartupError` when the daemon fails, dies, or
    is not ready within ``ready_timeout`` seconds (then it is terminated).
    """
    flush_std_streams()
    read_fd, write_fd = os.pipe()  # O_CLOEXEC: nothing exec'ed inherits it
    intermediate = os.fork()
    if intermediate:
        os.close(write_fd)
        try:
            return _wait_ready(read_fd, ready_timeout), None
        finally:
            os.close(read_fd)
            os.waitpid(intermediate, 0)  # it exits at once: reap it (step 3)
    # The intermediate process must never return into the caller's code.
    try:
        os.close(read_fd)
        os.setsid()
        if os.fork():
            os._exit(0)
    except BaseException as exc:
        os.write(write_fd, f"ERROR 1 cannot detach: {exc}\n".encode())
        os._exit(1)
    channel = Channel(write_fd)
    channel.send(f"PID {os.getpid()}")
    return 0, channel


def _wait_ready(fd: int, timeout: float | None) -> int:
    import select
    import time

    deadline = None if timeout is None else time.monotonic() + timeout
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    buffer = b""
    pid = 0
    while True:
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            word, _, rest = line.decode("utf-8", "replace").partition(" ")
            if word == "PID":
                pid = int(rest)
            elif word == "READY":
                return pid
            elif word == "ERROR":
                status, _, message = rest.partition(" ")
                raise StartupError(message, int(status))
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not poller.poll(None if remaining is None else int(remaining * 1000) + 1):
            if deadline is not None and time.monotonic() >= deadline:
                terminate(pid)
                raise StartupError(f"daemon (pid {pid}) not ready after {timeout:g} s; terminated it", 1)
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            who = f" (pid {pid})" if pid else ""
            raise StartupError(f"daemon{who} exited before it was ready", 1)
        buffer += chunk


def terminate(pid: int, grace: float = 1.0) -> None:
    """Stop a half-started daemon: TERM, then KILL after ``grace`` seconds;
    one that is already gone, or will not die, is left to the caller's error."""
    from .kill import StopError, Target

    if not pid:
        return
    try:
        with Target(pid) as target:
            target.terminate(timeout=grace, kill_timeout=grace)
    except (ProcessLookupError, StopError):
        pass


def fork_watched() -> tuple[int, int, int, Channel | None]:
    """Double-fork for exec'ing a command, with a watcher in between.

    Returns ``(watcher_pid, channel_fd, status_fd, None)`` in the launcher
    and ``(0, -1, -1, channel)`` in the daemon. The intermediate process
    (the watcher) does not exit at once: it waits for the daemon and writes
    ``EXIT <code>`` to ``status_fd`` if the daemon exits, so that a command
    that dies during startup reports its real exit status. The launcher
    kills the watcher once the daemon is ready; the daemon is then
    re-parented to init like any daemon.
    """
    flush_std_streams()
    read_fd, write_fd = os.pipe()
    status_read, status_write = os.pipe()
    watcher = os.fork()
    if watcher:
        os.close(write_fd)
        os.close(status_write)
        return watcher, read_fd, status_read, None
    try:
        os.close(read_fd)
        os.close(status_read)
        os.setsid()
        daemon = os.fork()
        if daemon == 0:
            os.close(status_write)
            channel = Channel(write_fd)
            channel.send(f"PID {os.getpid()}")
            return 0, -1, -1, channel
        os.close(write_fd)
        _, status = os.waitpid(daemon, 0)
        os.write(status_write, f"EXIT {os.waitstatus_to_exitcode(status)}\n".encode())
    except BaseException:
        pass
    os._exit(0)
