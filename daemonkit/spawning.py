"""``spawn``: any command as a daemon, returning once it is ready.

The launcher double-forks with a watcher in between (see
detach.fork_watched), the daemon performs the daemon(7) steps and exec's the
command, and the launcher waits for the readiness mode to say yes.
"""

from __future__ import annotations

import os
import time

from .command import command_context, command_env, find_executable, prepare_exec
from .context import DaemonContext
from .errors import DaemonError, StartupError
from .pidfile import PidFile, remove_stale
from .readiness import NotifySocket, WaitReady
from .report import describe

TYPE_CHECKING = False  # see __init__.py
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any, Callable


def spawn(
    argv: Sequence[str],
    *,
    pidfile: Any = None,
    wait_ready: str = "exec",
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
    on_wait: Callable[[str, float], object] | None = None,
    after_fork: Callable[[], object] | None = None,
    **options: Any,
) -> int:
    """Start ``argv`` as a daemon; return its PID once it is ready.

    ``wait_ready`` is one of ``exec``, ``notify``, ``tcp:HOST:PORT``,
    ``unix:PATH``, ``file:PATH``. ``options`` are DaemonContext's
    ``working_directory``, ``umask``, ``stdin``, ``stdout``, ``stderr``,
    ``user``, ``group``. ``on_wait(what, seconds)`` is called about once a
    second while waiting. ``after_fork()`` is called once the daemon is
    forked, while it starts: what it does delays neither the exec nor the
    return, though it competes with the command for the CPU.

    Raises :class:`AlreadyRunning`, or :class:`StartupError` with the
    command's exit status if it exits before it is ready (127: not found,
    126: not executable). After ``timeout`` seconds the half-started daemon
    and its process group are stopped and StartupError is raised.
    """
    if not argv:
        raise DaemonError("no command given")
    # "fd" (internal, for the supervisor): the exec'ed program inherits the
    # channel's write end, named in $DAEMONKIT_READY_FD, and writes READY
    # or ERROR <status> <message> there itself.
    ready_fd = wait_ready == "fd"
    mode = WaitReady("exec" if ready_fd else wait_ready)
    environ = command_env(env)
    executable = find_executable(argv[0], environ.get("PATH"))
    ctx = command_context(pidfile, True, {"env": environ, **options})
    creds = ctx._prepare()
    notify: NotifySocket | None = None
    try:
        if mode.kind == "notify":
            notify = NotifySocket(*((creds.uid, creds.gid) if creds else ()))
            assert ctx.env is not None
            ctx.env["NOTIFY_SOCKET"] = notify.path
        from .detach import fork_watched

        watcher, channel_fd, status_fd, channel = fork_watched()
        if channel is not None:  # the daemon: never returns
            ctx._channel = channel
            _become_command(ctx, creds, executable, list(argv), ready_fd)
        if after_fork is not None:
            after_fork()
        startup = _Startup(mode, timeout, watcher, channel_fd, status_fd, notify, on_wait)
        startup.ready_fd = ready_fd
        pid = startup.wait()
    except BaseException:
        _release(ctx.pidfile, failed=True)
        raise
    finally:
        if notify is not None:
            notify.close()
    _release(ctx.pidfile, failed=False)
    return pid


def _release(pidfile: Any, failed: bool) -> None:
    """Close the launcher's copy of the lock (never unlocking the daemon's);
    after a failed start, remove the file the dead daemon left."""
    if isinstance(pidfile, PidFile):
        pidfile.release()
        if failed:
            remove_stale(pidfile.path)


def _become_command(
    ctx: DaemonContext, creds: Any, executable: str, argv: list[str], ready_fd: bool = False
) -> Any:
    """In the daemon: the daemon(7) steps, then exec. Errors go to the launcher."""
    status, stage = 1, "start"
    try:
        ctx._become_daemon(creds)
        prepare_exec(ctx)
        stage = "exec"
        assert ctx._channel is not None
        ctx._channel.send("EXEC")
        if ready_fd and ctx._channel.fd is not None:
            os.set_inheritable(ctx._channel.fd, True)
            os.environ["DAEMONKIT_READY_FD"] = str(ctx._channel.fd)
        os.execve(executable, argv, os.environ)
    except BaseException as exc:
        if stage == "exec":
            status = 127 if isinstance(exc, FileNotFoundError) else 126
            message = f"cannot execute {executable}: {getattr(exc, 'strerror', None) or exc}"
        else:
            message = describe(exc)
        if ctx._channel is not None:
            ctx._channel.fail(status, message)
    os._exit(status)


class _Startup:
    """The launcher's side of a spawn: wait until ready, failed or late."""

    def __init__(
        self,
        mode: WaitReady,
        timeout: float,
        watcher: int,
        channel_fd: int,
        status_fd: int,
        notify: NotifySocket | None,
        on_wait: Callable[[str, float], object] | None,
    ) -> None:
        self.mode, self.timeout = mode, timeout
        self.watcher, self.channel_fd, self.status_fd = watcher, channel_fd, status_fd
        self.notify, self.on_wait = notify, on_wait
        self.pid = 0
        self.exec_attempted = False  # the daemon is about to exec
        self.execed = False  # ... and the exec succeeded
        self.buffers = {channel_fd: b"", status_fd: b""}
        self.ready_fd = False  # READY comes over the channel (see spawn)

    def wait(self) -> int:
        import select

        os.set_blocking(self.channel_fd, False)
        poller = select.poll()
        for fd in (self.channel_fd, self.status_fd) + ((self.notify.sock.fileno(),) if self.notify else ()):
            poller.register(fd, select.POLLIN)
        started = time.monotonic()
        deadline = started + self.timeout
        next_report = started + 1.0
        try:
            while True:
                if self.execed and self._ready():
                    return self.pid
                now = time.monotonic()
                if now >= deadline:
                    self._give_up()
                if self.on_wait is not None and now >= next_report:
                    self.on_wait(self.mode.spec, now - started)
                    next_report += 1.0
                wake = min(deadline, next_report)
                if self.execed and self.mode.polls:
                    wake = min(wake, now + 0.001)  # a refused connect costs ~50 µs
                ready = {fd for fd, _ in poller.poll(max(0, int((wake - now) * 1000 + 0.999)))}
                if self.channel_fd in ready:  # first: see _read_channel
                    self._read_channel(poller)
                    if self.execed and self.mode.kind == "exec":
                        continue
                if self.status_fd in ready:
                    self._read_status()
        finally:
            self._dismiss_watcher()
            os.close(self.channel_fd)
            os.close(self.status_fd)

    def _ready(self) -> bool:
        if self.mode.kind == "exec":
            return True
        if self.notify is not None:
            return self.notify.ready_received()
        return self.mode.check()

    def _lines(self, fd: int) -> tuple[list[str], bool]:
        chunk = os.read(fd, 4096)
        data = self.buffers[fd] + chunk
        *lines, self.buffers[fd] = data.split(b"\n")
        return [line.decode("utf-8", "replace") for line in lines], not chunk

    def _read_channel(self, poller: Any) -> None:
        """Everything the daemon has written, and its EOF if that came too
        (the fd is non-blocking): EOF after EXEC precedes any EXIT from the
        watcher, so a command that exec'ed and exited at once is seen to
        have exec'ed."""
        lines: list[str] = []
        eof = False
        while not eof:
            try:
                more, eof = self._lines(self.channel_fd)
            except BlockingIOError:
                break
            lines += more
        for line in lines:
            word, _, rest = line.partition(" ")
            if word == "PID":
                self.pid = int(rest)
            elif word == "EXEC":
                self.exec_attempted = True
            elif word == "READY" and self.ready_fd:
                self.execed = True
            elif word == "ERROR":
                status, _, message = rest.partition(" ")
                raise StartupError(message, int(status))
        if eof:
            # EOF after EXEC, with no ERROR: exec() closed the O_CLOEXEC pipe,
            # so it succeeded. EOF before it: the daemon died; the watcher
            # tells how.
            poller.unregister(self.channel_fd)
            if not self.ready_fd:
                self.execed = self.exec_attempted
            if not self.execed:
                self._read_status(block=True)

    def _read_status(self, block: bool = False) -> None:
        if block:
            import select

            select.select([self.status_fd], [], [], 5.0)
        lines, eof = self._lines(self.status_fd)
        for line in lines:
            word, _, code = line.partition(" ")
            if word == "EXIT":
                raise _exited(int(code))
        if eof:
            raise StartupError("exited before it was ready", 1)

    def _give_up(self) -> None:
        from .detach import terminate

        terminate(self.pid, grace=2.0)
        what = "" if self.mode.kind == "exec" else f" (waiting for {self.mode.spec})"
        raise StartupError(f"not ready after {self.timeout:g} s{what}; stopped it", 1)

    def _dismiss_watcher(self) -> None:
        from ._posix import signal

        try:
            os.kill(self.watcher, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.watcher, 0)


def _exited(code: int) -> StartupError:
    if code < 0:
        from .signals import signal_name

        return StartupError(f"killed by {signal_name(-code)} before it was ready", 128 - code)
    return StartupError(f"exited with status {code} before it was ready", code)
