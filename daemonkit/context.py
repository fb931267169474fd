"""DaemonContext (= daemonize) and @daemon: the daemon(7) steps, in order,
for Python code that becomes a daemon itself.
"""

from __future__ import annotations

import os
import sys

from . import launch, signals, steps, systemd
from .errors import DaemonError, StartupError
from .startup import Startup

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from types import TracebackType
    from typing import Any, Callable, NoReturn

    from . import privileges, streams

_current: DaemonContext | None = None


def ready() -> None:
    """Tell the launcher, and systemd if present, that startup is done.

    Needed only with ``manual_ready=True``; calling it again, or where
    nobody waits, does nothing.
    """
    if _current is not None:
        _current.ready()
    else:
        systemd.notify_quietly("READY=1")


class DaemonContext:
    """Turns the current process into a daemon when opened.

    Every option is keyword-only; docs/api.md gives each default and its
    reason. ``open()`` is where the work happens; ``with`` calls it.
    """

    def __init__(
        self,
        *,
        pidfile: Any = None,
        detach: bool | None = None,
        working_directory: str | os.PathLike[str] = "/",
        umask: int = 0o022,
        stdin: streams.Target = None,
        stdout: streams.Target = None,
        stderr: streams.Target = None,
        files_preserve: Iterable[Any] = (),
        close_fds: bool = True,
        preserve_logging: bool = True,
        on_reload: Callable[[], object] | None = None,
        signal_map: Mapping[int, signals.Handler] | None = None,
        user: privileges.UserSpec = None,
        group: privileges.UserSpec = None,
        chroot_directory: str | os.PathLike[str] | None = None,
        prevent_core: bool = True,
        env: Mapping[str, str] | None = None,
        manual_ready: bool = False,
        ready_timeout: float | None = None,
        allow_threads: bool = False,
        initgroups: bool = True,
    ) -> None:
        self.plan = steps.Plan(
            pidfile=pidfile,
            working_directory=working_directory,
            umask=umask,
            streams=(stdin, stdout, stderr),
            files_preserve=files_preserve,
            close_fds=close_fds,
            preserve_logging=preserve_logging,
            user=user,
            group=group,
            initgroups=initgroups,
            chroot_directory=chroot_directory,
            prevent_core=prevent_core,
            env=env,
        )
        self.detach = detach
        self.on_reload = on_reload
        self.signal_map = dict(signal_map or {})
        self.manual_ready = manual_ready
        self.ready_timeout = ready_timeout
        self.allow_threads = allow_threads
        self.is_open = False
        #: Whether open() forked (False under a service manager).
        self.detached = False
        self._channel: launch.Channel | None = None

    @property
    def pidfile(self) -> Any:
        """The pidfile object (a path given is a :class:`PidFile`)."""
        return self.plan.pidfile.pidfile if self.plan.pidfile is not None else None

    def open(self) -> None:
        """Become a daemon. In the launcher this never returns when detaching.

        The steps, numbered as in docs/concepts.md: 1 in the launcher
        (:func:`steps.prepare`), 2-3 :func:`launch.fork`, 4-9
        :func:`steps.become_daemon`, 10 the handlers, 11 :meth:`ready`.
        Under a service manager (``detach`` False, or None and one is
        detected) steps 2, 3 and the /dev/null part of 6 are skipped and
        READY goes to sd_notify.

        Before the fork, errors are raised here; after it, the launcher
        prints the daemon's error on one line and exits with its status.
        """
        if self.is_open:
            return
        steps.prepare(self.plan, allow_threads=self.allow_threads)  # 1
        self.detached = self.detach if self.detach is not None else not systemd.supervised()
        if self.detached:
            forked = launch.fork()  # 2, 3
            if isinstance(forked, launch.Forked):
                _wait_and_exit(forked, self.ready_timeout)
            self._channel = forked
        try:
            steps.become_daemon(self.plan, self._channel, detached=self.detached)  # 4-9
            signals.install(self.handle_sighup, self.signal_map)  # 10
        except BaseException as exc:
            if not self.detached:  # nobody forked: give the lock back, and raise
                if self.plan.pidfile is not None:
                    self.plan.pidfile.release()
                raise
            # The launcher prints the error and exits with it; the daemon must
            # not unwind into code around the `with` that was meant for it.
            self._fail(exc)
            os._exit(1)
        self.is_open = True
        global _current
        _current = self
        import atexit

        atexit.register(self.close)
        if not self.manual_ready:
            self.ready()  # 11

    def ready(self) -> None:
        """Step 11: release the launcher with exit status 0."""
        if self._channel is not None:
            channel, self._channel = self._channel, None
            channel.ready()
        # The manager started our launcher; after a fork it must learn who the
        # main process is now (sd_notify(3), MAINPID=).
        mainpid = {"mainpid": os.getpid()} if self.detached else {}
        systemd.notify_quietly("READY=1", **mainpid)

    def handle_sighup(self) -> None:
        """What SIGHUP does: reopen log files given as paths, then run
        ``on_reload``, between RELOADING=1 and READY=1 to systemd.

        An exception from ``on_reload`` is printed to the daemon's stderr and
        swallowed: a failed reload must not kill a running daemon.
        """
        from . import streams

        systemd.notify_quietly(*systemd.reloading_states())
        try:
            streams.reopen(self.plan.streams, self.plan.umask)
            if self.on_reload is not None:
                self.on_reload()
        except Exception:
            import traceback

            traceback.print_exc()
        systemd.notify_quietly("READY=1")

    def _fail(self, exc: BaseException) -> None:
        """Report an error before READY to the launcher, which exits with it."""
        if self._channel is None:
            return
        if isinstance(exc, SystemExit):
            code = exc.code
            status = code if isinstance(code, int) else (0 if code is None else 1)
            message = f"exited with status {status} before it was ready"
            status = status or 1
        else:
            status = 1
            message = describe(exc)
        self._channel.fail(status, message)
        self._channel = None

    def close(self) -> None:
        """Release the pidfile (only in the daemon that wrote it)."""
        if not self.is_open:
            return
        self.is_open = False
        if self._channel is not None:
            self._fail(DaemonError("daemon finished before it was ready"))
        if self.plan.pidfile is not None:
            self.plan.pidfile.release()
        global _current
        if _current is self:
            _current = None

    def __enter__(self) -> DaemonContext:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            self._fail(exc)
        self.close()


#: ``with daemonize(pidfile="app.pid"): serve()`` reads better than the class.
daemonize = DaemonContext


def _wait_and_exit(forked: launch.Forked, timeout: float | None) -> NoReturn:
    """The launcher's end: wait, then one line on stderr if it failed, then
    os._exit, because the caller's finally blocks and atexit handlers belong
    to the daemon now, not to the launcher."""
    try:
        Startup(forked, None, timeout).wait()
    except StartupError as exc:
        exit_with(exc.exit_status, str(exc))
    exit_with(0)


def exit_with(status: int, message: str | None = None) -> NoReturn:
    if message:
        try:
            sys.stderr.write(f"{program_name()}: {message}\n")
        except (OSError, ValueError):
            pass
    launch.flush_std_streams()
    os._exit(status)


def describe(exc: BaseException) -> str:
    """One line for the launcher: an OS or daemonkit error as its message,
    anything else with its type, as a traceback's last line would."""
    if isinstance(exc, (DaemonError, OSError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def program_name() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "daemon"


def daemon(fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Decorate ``main()``: calling it daemonizes and runs the body in the
    daemon, whose exit status is the return value (None counts as 0). An
    error before the fork (already running, an unknown user) is printed as
    one line and exits with status 1."""
    import functools

    if fn is None:
        return functools.partial(daemon, **options)

    @functools.wraps(fn)
    def run_as_daemon(*args: Any, **kwargs: Any) -> Any:
        context = DaemonContext(**options)
        try:
            context.open()
        except DaemonError as exc:
            if context.is_open:
                raise
            exit_with(1, str(exc))
        with context:
            status = fn(*args, **kwargs)
        raise SystemExit(0 if status is None else status)

    return run_as_daemon
