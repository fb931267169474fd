"""The launcher's side of a start: wait until the daemon is ready, has
failed, or is late, and tell the truth about which.

One reader for the library and the CLI alike. It reads the pipes of
launch.py, probes the readiness mode, and applies one policy when a start
is abandoned (a timeout, Ctrl-C or SIGTERM): the half-started daemon is
stopped (TERM, then KILL after :data:`launch.GRACE` s) and the error says
so. A hangup (the terminal closed) does not abandon the start.
"""

from __future__ import annotations

import os
import select
import time

from . import _posix
from .errors import StartupError
from .kill import Target, stop_quietly
from .launch import GRACE, Forked, exited_message
from .readiness import EXEC_SETTLE, WaitReady

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import FrameType
    from typing import Any, Callable

    from .readiness import NotifySocket


class _Interrupted(Exception):
    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signum)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise _Interrupted(signum)


class Startup:
    """Wait for ``forked`` to be ready in ``mode`` (None: the daemon says
    READY itself), within ``timeout`` seconds (None: forever)."""

    def __init__(
        self,
        forked: Forked,
        mode: WaitReady | None,
        timeout: float | None,
        *,
        notify: NotifySocket | None = None,
        on_wait: Callable[[str, float], object] | None = None,
    ) -> None:
        self.forked, self.mode, self.timeout = forked, mode, timeout
        self.notify, self.on_wait = notify, on_wait
        self.exec_attempted = False  # the daemon is about to exec
        self.execed_at: float | None = None  # ... and the exec succeeded then
        self.said_ready = False
        self.left: list[int] = []
        self.buffers = {forked.channel: b"", forked.status: b""}

    @property
    def pid(self) -> int:
        return self.forked.pid

    def wait(self) -> int:
        """The daemon's PID once it is ready; StartupError otherwise. The
        watcher is dismissed (success) or reaped (failure) before return."""
        handlers = _scoped_handlers()
        try:
            pid = self._wait()
        except BaseException:
            self.forked.close()
            raise
        finally:
            _restore(handlers)
        self.forked.dismiss()
        return pid

    def _wait(self) -> int:
        started = time.monotonic()
        deadline = None if self.timeout is None else started + self.timeout
        next_report = started + 1.0
        poller = select.poll()
        for fd in (self.forked.channel, self.forked.status):
            os.set_blocking(fd, False)
            poller.register(fd, select.POLLIN)
        if self.notify is not None:
            poller.register(self.notify.sock.fileno(), select.POLLIN)
        while True:
            try:
                if self._ready():
                    return self.pid
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    what = (
                        f" (waiting for {self.mode.spec})" if self.mode and self.mode.kind != "exec" else ""
                    )
                    self._abandon(f"not ready after {self.timeout:g} s{what}")
                if self.on_wait is not None and now >= next_report:
                    self.on_wait(self.mode.spec if self.mode else "ready", now - started)
                    next_report += 1.0
                wake = next_report if deadline is None else min(deadline, next_report)
                if self.execed_at is not None and self.mode is not None:
                    if self.mode.polls:
                        wake = min(wake, now + 0.001)  # a refused connect costs ~50 µs
                    elif self.mode.kind == "exec":
                        wake = min(wake, self.execed_at + EXEC_SETTLE)
                ready = {fd for fd, _ in poller.poll(max(0, int((wake - now) * 1000 + 0.999)))}
                if self.forked.channel in ready:  # first: see _read_channel
                    self._read_channel(poller)
                if self.forked.status in ready:
                    self._read_status()
            except _Interrupted as exc:
                from .signals import signal_name

                self._abandon(f"interrupted by {signal_name(exc.signum)}", 128 + exc.signum)

    def _ready(self) -> bool:
        """Ready in the mode, with the main process alive at this moment."""
        if self.mode is None or self.mode.kind == "fd":
            ready = self.said_ready
        elif self.execed_at is None:
            return False
        elif self.mode.kind == "exec":
            ready = time.monotonic() >= self.execed_at + EXEC_SETTLE
        elif self.notify is not None:
            ready = self.notify.ready_received()
        else:
            ready = self.mode.check(self.forked.watcher)  # the watcher's pid is the session's id
        if not ready:
            return False
        self._read_status()  # an exit that came meanwhile comes first
        return bool(self.pid) and _posix.is_alive(self.pid)

    def _lines(self, fd: int) -> tuple[list[str], bool]:
        """The whole lines available on ``fd``, and whether it reached EOF."""
        lines: list[str] = []
        while True:
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                return lines, False
            data = self.buffers[fd] + chunk
            *whole, self.buffers[fd] = data.split(b"\n")
            lines += [line.decode("utf-8", "replace") for line in whole]
            if not chunk:
                return lines, True

    def _read_channel(self, poller: select.poll) -> None:
        """Everything the daemon wrote, and its EOF if that came too: EOF
        after EXEC precedes any EXIT from the watcher, so a command that
        exec'ed and exited at once is seen to have exec'ed."""
        lines, eof = self._lines(self.forked.channel)
        for line in lines:
            word, _, rest = line.partition(" ")
            if word == "EXEC":
                self.exec_attempted = True
            elif word == "READY":
                self.said_ready = True
            elif word == "ERROR":
                status, _, message = rest.partition(" ")
                self._fail(StartupError(message, int(status)))
        if eof:
            # After EXEC, with no ERROR: exec() closed the O_CLOEXEC pipe, so
            # it succeeded. Before it: the daemon died; the watcher tells how.
            poller.unregister(self.forked.channel)
            if self.exec_attempted:
                self.execed_at = time.monotonic()
            elif not self.said_ready:
                self._read_status(block=True)

    def _read_status(self, block: bool = False) -> None:
        if block:
            select.select([self.forked.status], [], [], 2 * GRACE + 1)
        lines, eof = self._lines(self.forked.status)
        for line in lines:
            word, _, rest = line.partition(" ")
            if word == "PID":
                self.forked.pid = int(rest)
            elif word == "LEFT":
                self.left = [int(pid) for pid in rest.split()]
            elif word == "EXIT":
                self._fail(self._exited(int(rest)))
        if eof:
            self._fail(StartupError("exited before it was ready", 1))

    def _exited(self, code: int) -> StartupError:
        if self.left:
            listed = " ".join(map(str, self.left))
            return StartupError(
                f"exited with status {code} while processes it started live on ({listed}; stopped "
                "them): it forks itself into the background; run it in the foreground, e.g. "
                "nginx -g 'daemon off;'",
                code or 1,
            )
        if self.execed_at is not None and code >= 0 and self.mode is not None and self.mode.kind == "exec":
            return StartupError(f"exited with status {code} right after it started", code)
        return exited_message(code)

    def _fail(self, error: StartupError) -> None:
        """A failure the daemon reported or died of: stop what it left."""
        if self.pid and _posix.is_alive(self.pid):
            self._stop()
        raise error

    def _abandon(self, why: str, status: int = 1) -> None:
        stopped = self._stop()
        raise StartupError(f"{why}; {'stopped it' if stopped else 'it is gone'}", status)

    def _stop(self) -> bool:
        """Stop the half-started daemon; False if it was already gone."""
        pid = self.pid or self._wait_for_pid()
        if not pid:
            return False
        try:
            with Target(pid) as target:
                stop_quietly(target, GRACE)
        except ProcessLookupError:
            return False
        return True

    def _wait_for_pid(self) -> int:
        """The watcher says the PID right after forking: wait for it."""
        deadline = time.monotonic() + GRACE
        while not self.pid and time.monotonic() < deadline:
            select.select([self.forked.status], [], [], GRACE)
            try:
                self._read_status()
            except StartupError:
                break
        return self.pid


def _scoped_handlers() -> dict[int, Any] | None:
    """While the launcher waits: Ctrl-C and SIGTERM abandon the start, a
    hangup is ignored (the start completes and is recorded). Only the main
    thread can set handlers; elsewhere they stay as they are."""
    import signal

    scoped = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous: dict[int, Any] = {sig: signal.getsignal(sig) for sig in scoped}
    try:
        signal.signal(signal.SIGINT, _interrupt)
    except ValueError:  # not the main thread
        return None
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    return previous


def _restore(previous: dict[int, Any] | None) -> None:
    import signal

    for sig, handler in (previous or {}).items():
        if handler is not None:  # None: set outside Python, cannot be restored
            signal.signal(sig, handler)
