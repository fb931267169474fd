"""The supervisor's loop: run the app, restart it, capture its output.

One poll() waits on everything: the signal wakeup pipe (SIGCHLD and the
control signals, signal.set_wakeup_fd), the app's output pipe, the notify
socket, and a timeout computed from the next deadline (backoff, watchdog,
stop timeout; readiness probes only while the app starts). No polling
interval: a crash is seen when the kernel reports it (runsv, not
supervisord's one-second loop).

Signals sent to the supervisor::

    TERM, INT        stop the app (stop signal to its group, then to every
                     remaining descendant; SIGKILL after the stop timeout),
                     remove the pidfile, exit 0
    HUP              reload: the reload signal to the app, only if the app
                     catches it (/proc/PID/status SigCgt); else refused,
                     with one line in the log
    RESTART_SIGNAL   stop the app and start it again at once
    ROTATE_SIGNAL    rotate the log now (reopen it if it was moved away)
    CHLD             reap
    anything else    passed on to the app (USR1, USR2, QUIT, WINCH, ...)
"""

from __future__ import annotations

import os
import select
import signal
import time

from . import _posix
from . import supervisor_commands as commands
from .logfile import LogWriter
from .readiness import NotifySocket, WaitReady
from .supervisor import RESTART_SIGNAL, ROTATE_SIGNAL, Config, write_state
from .supervisor_tree import find_lock_fd, kill_quietly, remove_pidfile, signal_tree

TYPE_CHECKING = False  # see __init__.py
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, NoReturn

# Faults are the supervisor's own to die of; the rest are never caught.
_NOT_CAUGHT = {signal.SIGKILL, signal.SIGSTOP, signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL}
_NOT_CAUGHT |= {signal.SIGTRAP, signal.SIGSYS, signal.SIGABRT, signal.SIGPIPE, signal.SIGXFSZ}
_STOP = (signal.SIGTERM, signal.SIGINT)
_DISK_FULL_RETRY = 1.0  # no event says "space is back"


def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"SIG{sig}"


def _noop(sig: int, frame: Any) -> None:
    """The byte on the wakeup fd is what counts."""


class Supervisor:
    def __init__(self, config: Config) -> None:
        self.cfg = config
        self.mode = WaitReady(config.wait_ready)
        self.pid = os.getpid()
        self.state = "starting"
        self.restarts = self.short_runs = self.reloads = self.rotations = 0
        self.next_delay = config.restart_sec
        self.app = 0
        self.app_started = self.app_started_mono = 0.0
        self.ready = self.ever_ready = self.stopping = self.restart_requested = False
        self.watchdog_fired = False
        self.last_exit: dict[str, Any] | None = None
        self.last_reload: dict[str, Any] | None = None
        self.status_text = ""
        self.final_state, self.exit_code = "stopped", 0
        self.restart_at = self.kill_at = self.watchdog_at = self.retry_at = None  # type: float | None
        self.reload_started: float | None = None
        self.reload_deadline = 0.0
        self.reloading = False
        self.exec_fd = -1
        self.done = False
        self.startup_error = "ERROR 1 the supervisor stopped before the app was ready"
        ready_fd = os.environ.pop("DAEMONKIT_READY_FD", "")
        self.ready_fd = int(ready_fd) if ready_fd.isdigit() else -1
        self.lock_fd = find_lock_fd(config.pidfile)

    # -- setup and the loop -------------------------------------------------

    def setup(self) -> None:
        self.subreaper = _posix.become_subreaper()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        for sig in signal.valid_signals():
            if sig not in _NOT_CAUGHT:
                try:
                    signal.signal(sig, _noop)
                except (OSError, ValueError):  # reserved by the C library
                    pass
        # execve(2) resets caught signals to SIG_DFL but keeps SIG_IGN: the
        # app's fork resets only these (fewer syscalls on the restart path).
        self.ignored = [sig for sig in signal.valid_signals() if signal.getsignal(sig) == signal.SIG_IGN]
        import resource  # noqa: F401  close_fds_except's, loaded once here rather than in every fork

        self.log_r, self.log_w = os.pipe()  # held across restarts: no line lost
        os.set_blocking(self.log_r, False)
        cfg = self.cfg
        self.writer = LogWriter(
            cfg.log,
            max_size=cfg.log_max_size,
            keep=cfg.log_keep,
            timestamps=cfg.log_timestamps == "iso",
            service_uid=cfg.uid if cfg.uid >= 0 else None,
        )
        self.notify: NotifySocket | None = None
        if self.mode.kind == "notify" or cfg.watchdog_sec > 0:
            self.notify = NotifySocket(*((cfg.uid, cfg.gid) if cfg.uid >= 0 else ()))
        self.poller = select.poll()
        self.poller.register(self.wake_r, select.POLLIN)
        self.poller.register(self.log_r, select.POLLIN)
        if self.notify is not None:
            self.poller.register(self.notify.sock.fileno(), select.POLLIN)

    def run(self) -> int:
        self.setup()
        self.start_app()
        while not self.done:
            timeout = self._timeout()
            for fd, _ in self.poller.poll(timeout):
                if fd == self.wake_r:
                    self.on_signals()
                elif fd == self.log_r:
                    self.drain_log()
                elif fd == self.exec_fd:
                    self.on_exec_pipe()
                elif self.notify is not None and fd == self.notify.sock.fileno():
                    self.on_notify()
            self.on_timers()
        return self.finish()

    def _timeout(self) -> int:
        deadlines = [d for d in (self.restart_at, self.kill_at, self.watchdog_at, self.retry_at) if d]
        if self.reload_started is not None:
            deadlines.append(self.reload_deadline)
        if self.app and not self.ready and self.mode.polls:
            deadlines.append(time.monotonic() + 0.002)  # probes, only while starting
        if not deadlines:
            return -1
        return max(0, int((min(deadlines) - time.monotonic()) * 1000 + 0.999))

    # -- events ---------------------------------------------------------------

    def on_signals(self) -> None:
        try:
            received = os.read(self.wake_r, 512)
        except BlockingIOError:
            return
        for sig in received:
            if sig == signal.SIGCHLD:
                self.reap()
            elif sig in _STOP:
                self.begin_stop("stopped")
            elif sig == signal.SIGHUP:
                commands.reload(self)
            elif sig == RESTART_SIGNAL:
                self.restart()
            elif sig == ROTATE_SIGNAL:
                commands.rotate(self)
            elif self.app:
                kill_quietly(self.app, sig)

    def drain_log(self) -> None:
        for _ in range(16):  # then let other events in
            try:
                data = os.read(self.log_r, 65536)
            except BlockingIOError:
                return
            if not data:
                return
            if not self.writer.write(data):
                # Disk full: stop reading; the app blocks on its next write.
                if self.retry_at is None:
                    self.poller.unregister(self.log_r)
                    self.retry_at = time.monotonic() + _DISK_FULL_RETRY
                    self.save()
                return

    def on_exec_pipe(self) -> None:
        data = os.read(self.exec_fd, 64)
        self.poller.unregister(self.exec_fd)
        os.close(self.exec_fd)
        self.exec_fd = -1
        if not data and self.mode.kind == "exec" and self.app:
            self.on_ready()  # EOF with no error byte: the exec succeeded

    def on_notify(self) -> None:
        assert self.notify is not None
        if commands.on_notify(self, self.notify.receive()):
            self.save()

    def on_timers(self) -> None:
        now = time.monotonic()
        if self.restart_at is not None and now >= self.restart_at:
            self.restart_at = None
            self.restarts += 1
            self.start_app()
        if self.watchdog_at is not None and now >= self.watchdog_at and self.app:
            # systemd's WatchdogSec=: SIGABRT, so that the app may dump core.
            self.watchdog_at = None
            self.watchdog_fired = True
            kill_quietly(self.app, signal.SIGABRT)
            self.kill_at = now + self.cfg.stop_timeout
        if self.kill_at is not None and now >= self.kill_at:
            self.kill_at = None
            self.signal_all(signal.SIGKILL)
        if self.retry_at is not None and now >= self.retry_at:
            self.retry_at = None
            if self.writer.retry():
                self.poller.register(self.log_r, select.POLLIN)
                self.save()
            else:
                self.retry_at = now + _DISK_FULL_RETRY
        if self.reload_started is not None and now >= self.reload_deadline:
            result = "timed out waiting for READY=1" if self.reloading else "sent"
            commands.end_reload(self, result, None)
        if self.app and not self.ready and self.mode.polls and self.mode.check(os.getsid(0)):
            self.on_ready()

    # -- the app ------------------------------------------------------------

    def start_app(self) -> None:
        from .supervisor_child import exec_app

        self.state, self.ready, self.watchdog_fired = "starting", False, False
        exec_r, exec_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            exec_app(self, exec_w)
        os.close(exec_w)
        self.app = pid
        if self.notify is not None:  # only the app and its descendants may notify
            self.notify.daemon_pid = pid
        self.app_started, self.app_started_mono = time.time(), time.monotonic()
        try:
            os.setpgid(pid, pid)  # also in the child: whichever runs first
        except OSError:
            pass
        self.exec_fd = exec_r
        self.poller.register(exec_r, select.POLLIN)
        if self.cfg.watchdog_sec > 0:
            self.watchdog_at = self.app_started_mono + self.cfg.watchdog_sec
        if self.mode.kind != "exec":  # exec: "running" follows within a millisecond
            self.save()

    def on_ready(self) -> None:
        self.ready, self.ever_ready, self.state = True, True, "running"
        self.save()  # first: the launcher reads the app's PID from the record
        self._tell_launcher("READY")  # the first run only: then the fd is closed

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                if self.stopping:
                    self.done = True
                return
            if pid == 0:
                return
            if pid == self.app:
                self.app_exited(os.waitstatus_to_exitcode(status))

    def app_exited(self, code: int) -> None:
        if self.exec_fd >= 0:  # an exec that succeeded, then exited at once
            self.on_exec_pipe()
        if self.retry_at is None:  # its last output, and a line it left open, ended
            self.drain_log()
            self.writer.flush()
        now = time.monotonic()
        self.app, self.ready = 0, False
        self.watchdog_at = None
        self.last_exit = {"code": code} if code >= 0 else {"signal": signal_name(-code)}
        self.last_exit["at"] = time.time()
        if self.watchdog_fired:
            self.last_exit["watchdog"] = True
        if self.reload_started is not None:
            commands.end_reload(self, "the app exited", None)
        if self.stopping:
            return
        self.kill_at = None
        failure = code != 0 or self.watchdog_fired
        if not self.ever_ready:  # the first run never became ready: nothing stays
            what = f"exited with status {code}" if code >= 0 else f"killed by {signal_name(-code)}"
            status = code if code > 0 else (128 - code if code < 0 else 1)
            # Told once everything is stopped and the pidfile removed (finish).
            self.startup_error = f"ERROR {status} {what} before it was ready"
            self.exit_code = 1
            self.begin_stop("stopped")
            return
        if self.restart_requested:
            self.restart_requested = False
            self.restarts += 1
            self.start_app()
            return
        if now - self.app_started_mono >= self.cfg.min_uptime:  # healthy: at once, delay reset
            self.short_runs, wait, self.next_delay = 0, 0.0, self.cfg.restart_sec
        else:
            self.short_runs += 1
            wait = self.next_delay
            self.next_delay = min(self.next_delay * 2, self.cfg.restart_max_delay)
        if not (failure or self.cfg.restart == "always"):
            self.begin_stop("stopped")
        elif self.short_runs >= self.cfg.start_limit_burst:
            self.begin_stop("fatal")
        elif wait <= 0:
            self.restarts += 1
            self.start_app()
        else:
            self.state, self.restart_at = "backoff", now + wait
            self.save()

    def signal_all(self, sig: int) -> None:
        """``sig`` to the app's group, then to every other descendant."""
        signal_tree(self.app, self.pid, sig)

    def begin_stop(self, final_state: str) -> None:
        if self.stopping:
            return
        self.stopping, self.final_state, self.restart_at = True, final_state, None
        self.state = "stopping"
        self.save()
        self.signal_all(self.cfg.stop_signal)
        self.kill_at = time.monotonic() + self.cfg.stop_timeout
        self.reap()

    def restart(self) -> None:
        if self.stopping:
            return
        if not self.app:  # in backoff, or not yet started: start now
            self.restart_at = None
            self.restarts += 1
            self.start_app()
            return
        self.restart_requested = True
        self.signal_all(self.cfg.stop_signal)
        self.kill_at = time.monotonic() + self.cfg.stop_timeout

    # -- the record and the end ---------------------------------------------

    def save(self) -> None:
        write_state(self.cfg.path_of_state(), commands.record(self))

    def _tell_launcher(self, line: str) -> None:
        fd, self.ready_fd = self.ready_fd, -1
        if fd < 0:
            return
        try:
            os.write(fd, (line + "\n").encode("utf-8", "replace"))
        except OSError:  # the launcher is gone: the daemon must not die of it
            pass
        os.close(fd)

    def finish(self) -> int:
        if self.retry_at is None:  # else the disk is full: what is left stays in the pipe
            self.drain_log()
        self.state = self.final_state
        self.save()
        if self.notify is not None:
            self.notify.close()
        self.writer.close()
        if self.final_state != "fatal":
            remove_pidfile(self.cfg.pidfile, self.lock_fd)
        self._tell_launcher(self.startup_error)
        return self.exit_code


def main(argv: Sequence[str]) -> NoReturn:
    """The supervisor process: run until stopped, then exit."""
    config = Config.from_argv(argv)
    code = Supervisor(config).run()
    os._exit(code)
