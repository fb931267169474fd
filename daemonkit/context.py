"""DaemonContext, daemonize() and @daemon: the daemon(7) steps, in order.

The modules that do the steps (and the signal module they need) are imported
when a context opens, not at ``import daemonkit``, which stays near 2 ms.
"""

from __future__ import annotations

import os
import sys

from .errors import DaemonError, StartupError
from .pidfile import PidFile
from .report import describe, exit_launcher, print_uncaught_as_one_line

TYPE_CHECKING = False  # see __init__.py
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from types import TracebackType
    from typing import Any, Callable

    from . import privileges, signals, streams
    from .detach import Channel

_current: DaemonContext | None = None


def ready() -> None:
    """Tell the launcher, and systemd if present, that startup is done.

    Needed only with ``manual_ready=True``; calling it again, or where
    nobody waits, does nothing.
    """
    if _current is not None:
        _current.ready()
    else:
        from . import systemd

        systemd.notify_quietly("READY=1")


class DaemonContext:
    """Turns the current process into a daemon when opened.

    Every option is keyword-only; see the API reference for each default and
    its reason. ``open()`` is where the work happens; ``with`` calls it.
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
        self.pidfile = PidFile(pidfile) if isinstance(pidfile, (str, os.PathLike)) else pidfile
        self.detach = detach
        self.working_directory = os.fspath(working_directory)
        self.umask = umask
        self.streams: tuple[Any, Any, Any] = (_absolute(stdin), _absolute(stdout), _absolute(stderr))
        self.files_preserve = list(files_preserve)
        self.close_fds = close_fds
        self.preserve_logging = preserve_logging
        self.on_reload = on_reload
        self.signal_map = dict(signal_map or {})
        self.user, self.group = user, group
        self.chroot_directory = None if chroot_directory is None else os.path.abspath(chroot_directory)
        self.prevent_core = prevent_core
        self.env = None if env is None else dict(env)
        self.manual_ready = manual_ready
        self.ready_timeout = ready_timeout
        self.allow_threads = allow_threads
        self.initgroups = initgroups
        self._is_open = False
        self._channel: Channel | None = None
        self._detached = False
        # Set by spawn() and run(): an exec follows the steps, so the signal
        # dispositions are reset for the new program and no handler is set.
        self._for_exec = False

    @property
    def is_open(self) -> bool:
        return self._is_open

    def open(self) -> None:
        """Become a daemon. In the launcher this never returns when detaching.

        1. (launcher) check threads; resolve user, group and paths; make sure
           fds 0-2 are open; lock the pidfile, so "already running" is an
           immediate, catchable :class:`AlreadyRunning` in the terminal
        2. fork; setsid; fork: the daemon can never regain a terminal
        3. the intermediate process ``os._exit(0)``\\s; the launcher reaps it
           and waits on the readiness pipe
        4. reset every signal handler and unblock the signal mask
        5. close every inherited fd but the pidfile lock, the readiness pipe,
           ``files_preserve``, logging handler files and socket-activation fds
        6. stdin/stdout/stderr to /dev/null or the given targets
        7. umask, chroot, chdir, environment
        8. write the daemon's PID into the locked pidfile
        9. disable core dumps; drop privileges
        10. install handlers: SIGTERM exits cleanly, SIGHUP reloads, SIGTSTP,
            SIGTTIN, SIGTTOU are ignored
        11. report READY (unless ``manual_ready``); the launcher exits 0 then,
            or with the daemon's status and message if any step failed

        Under a service manager (``detach`` False, or None and one is
        detected) steps 2, 3 and the /dev/null part of 6 are skipped and
        READY goes to sd_notify.
        """
        from . import systemd

        if self._is_open:
            return
        try:
            creds = self._prepare()
        except DaemonError:
            print_uncaught_as_one_line()
            raise
        self._detached = self.detach if self.detach is not None else not systemd.supervised()
        if self._detached:
            self._fork_or_exit()
        try:
            self._become_daemon(creds)
        except BaseException as exc:
            if not self._detached:
                # Nobody forked: give the lock back, and report like step 1 does.
                if isinstance(self.pidfile, PidFile):
                    self.pidfile.release()
                if isinstance(exc, DaemonError):
                    print_uncaught_as_one_line()
                raise
            # The launcher prints the error and exits with it; the daemon must
            # not unwind into code around the `with` that was meant for it.
            self._fail(exc)
            os._exit(1)
        self._is_open = True
        global _current
        _current = self
        import atexit

        atexit.register(self.close)
        if not self.manual_ready:
            self.ready()

    def _prepare(self) -> privileges.Credentials | None:
        """Step 1, in the launcher: everything that can fail early fails here."""
        # Every module the daemon needs is imported here, before forking:
        # imports after fork() pay a copy-on-write fault per touched page,
        # and after a chroot they may find no files at all.
        import resource  # noqa: F401
        import select  # noqa: F401

        from . import _posix, detach, privileges, signals, streams, systemd  # noqa: F401

        if not self.allow_threads and _posix.thread_count() > 1:
            raise DaemonError(
                "other threads are running; forking would copy only this one "
                "(start threads after daemonize(), or pass allow_threads=True)"
            )
        creds = privileges.resolve(self.user, self.group, self.initgroups)
        if self.chroot_directory is not None:
            import socket  # noqa: F401  (sd_notify)
            import traceback  # noqa: F401  (reload errors)
        streams.ensure_std_fds()
        if isinstance(self.pidfile, PidFile):
            self.pidfile.lock(service_uid=creds.uid if creds else None)
        return creds

    def _fork_or_exit(self) -> None:
        """Steps 2-3. The launcher leaves here only through os._exit."""
        from .detach import fork_daemon

        try:
            pid, channel = fork_daemon(self.ready_timeout)
        except StartupError as exc:
            exit_launcher(exc.exit_status, str(exc))
        if pid:
            exit_launcher(0)
        self._channel = channel

    def _become_daemon(self, creds: privileges.Credentials | None) -> None:
        from . import _posix, privileges, signals, streams

        signals.reset(for_exec=self._for_exec)  # 4
        if self.close_fds:  # 5
            _posix.close_fds_except(self._fds_to_keep())
        uid = creds.uid if creds else None  # whose directories root may trust
        streams.redirect(self.streams, self.umask, skip_unset=not self._detached, service_uid=uid)  # 6
        os.umask(self.umask)  # 7
        if self.chroot_directory is not None:
            privileges.chroot(self.chroot_directory)
        try:
            os.chdir(self.working_directory)
        except OSError as exc:
            raise DaemonError(f"cannot chdir to {self.working_directory}: {exc.strerror}") from exc
        if self.env is not None:
            os.environ.clear()
            os.environ.update(self.env)
        if isinstance(self.pidfile, PidFile):  # 8
            self.pidfile.write(os.getpid())
        elif self.pidfile is not None:
            self.pidfile.__enter__()  # e.g. lockfile's PIDLockFile: it writes getpid()
        if self.prevent_core:  # 9
            privileges.prevent_core_dumps()
        if creds is not None:
            privileges.drop(creds)
        if not self._for_exec:
            signals.install(self.reload, self.signal_map)  # 10

    def _fds_to_keep(self) -> set[int]:
        from . import systemd

        keep: set[int] = set(systemd.listen_fd_range())
        write_fd = getattr(self.pidfile, "write_fd", None)  # closed once the PID is written
        for obj in [self.pidfile, write_fd, self._channel_fd(), *self.files_preserve, *self.streams]:
            fd = _fileno_or_none(obj)
            if fd is not None:
                keep.add(fd)
        if self.preserve_logging:
            keep.update(_logging_fds())
        return keep

    def _channel_fd(self) -> int | None:
        return self._channel.fd if self._channel is not None else None

    def ready(self) -> None:
        """Step 11: release the launcher with exit status 0."""
        if self._channel is not None:
            channel, self._channel = self._channel, None
            channel.ready()
        from . import systemd

        # The manager started our launcher; after a fork it must learn who the
        # main process is now (sd_notify(3), MAINPID=).
        mainpid = {"mainpid": os.getpid()} if self._detached else {}
        systemd.notify_quietly("READY=1", **mainpid)

    def reload(self) -> None:
        """SIGHUP: reopen log files given as paths, then run ``on_reload``.

        An exception from ``on_reload`` is printed to the daemon's stderr and
        swallowed: a failed reload must not kill a running daemon.
        """
        from . import streams, systemd

        systemd.notify_quietly(*systemd.reloading_states())
        try:
            streams.reopen(self.streams, self.umask)
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
        if not self._is_open:
            return
        self._is_open = False
        if self._channel is not None:
            self._fail(DaemonError("daemon finished before it was ready"))
        if self.pidfile is not None:
            if isinstance(self.pidfile, PidFile):
                self.pidfile.release()
            else:
                self.pidfile.__exit__(None, None, None)
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


def daemonize(**options: Any) -> DaemonContext:
    """``with daemonize(pidfile="app.pid"): serve()``; options as DaemonContext."""
    return DaemonContext(**options)


def daemon(fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Decorate ``main()``: calling it daemonizes and runs the body in the
    daemon, whose exit status is the return value (None counts as 0)."""
    import functools

    if fn is None:
        return functools.partial(daemon, **options)

    @functools.wraps(fn)
    def run_as_daemon(*args: Any, **kwargs: Any) -> Any:
        with DaemonContext(**options):
            status = fn(*args, **kwargs)
        raise SystemExit(0 if status is None else status)

    return run_as_daemon


def _absolute(target: Any) -> Any:
    return os.path.abspath(target) if isinstance(target, (str, os.PathLike)) else target


def _fileno_or_none(obj: Any) -> int | None:
    if isinstance(obj, int):
        return obj
    fileno = getattr(obj, "fileno", None)
    if fileno is None:
        return None
    try:
        return int(fileno())
    except (OSError, ValueError):
        return None


def _logging_fds() -> set[int]:
    """fds of the open handlers of every logger (python-daemon FAQ: closing
    them is the classic "my daemon's logging stopped" bug)."""
    logging = sys.modules.get("logging")
    if logging is None:
        return set()
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    fds = set()
    for logger in loggers:
        for handler in logger.handlers:
            for attr in ("stream", "socket", "sock"):
                fd = _fileno_or_none(getattr(handler, attr, None))
                if fd is not None:
                    fds.add(fd)
    return fds
