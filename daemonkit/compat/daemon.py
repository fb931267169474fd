"""python-daemon's ``daemon.daemon`` module: ``DaemonContext`` and the
helpers it decides with, on top of :class:`daemonkit.DaemonContext`.

Every option is a plain attribute, as in python-daemon: set it in the
constructor or afterwards, read it back, until ``open()``, which turns the
attributes into a daemonkit context then and there.
"""

from __future__ import annotations

import atexit
import os
import signal
import stat
import sys

from .. import DaemonContext as _CoreContext
from ..errors import DaemonError
from .pidfile import PIDLockFile

TYPE_CHECKING = False  # see daemonkit/__init__.py
if TYPE_CHECKING:
    from types import FrameType, TracebackType
    from typing import Any, NoReturn

__all__ = [
    "DaemonContext",
    "DaemonError",
    "DaemonOSEnvironmentError",
    "DaemonProcessDetachError",
    "is_detach_process_context_required",
    "is_process_started_by_init",
    "is_process_started_by_superserver",
    "is_socket_file",
    "make_default_signal_map",
]


class DaemonOSEnvironmentError(DaemonError, OSError):
    """Changing the process environment failed (python-daemon's name)."""


class DaemonProcessDetachError(DaemonError, OSError):
    """Detaching failed (python-daemon's name)."""


class TerminateSignal(SystemExit):
    """What ``terminate()`` raises: exit status 0, and python-daemon's
    message, "Terminating on signal N", for code that logs it."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(0)
        self.signal_number = signal_number

    def __str__(self) -> str:
        return f"Terminating on signal {self.signal_number!r}"


class DaemonContext:
    """python-daemon's ``DaemonContext``, with daemonkit doing the work.

    Each constructor argument is also an attribute, readable and writable
    until ``open()``, with python-daemon's defaults read back: ``uid`` and
    ``gid`` are the current ones, ``detach_process`` is
    :func:`is_detach_process_context_required` (parent is init, or stdin
    is a socket), ``signal_map`` is :func:`make_default_signal_map`.
    ``signal_map`` values are handlers, None (ignore) or names of methods
    of this object, such as ``'terminate'``. A signal the map does not
    name keeps its default action; for SIGHUP that is death, as under
    python-daemon (daemonkit's own API reloads instead).
    """

    def __init__(
        self,
        chroot_directory: Any = None,
        working_directory: Any = "/",
        umask: Any = 0o022,
        uid: Any = None,
        gid: Any = None,
        initgroups: Any = False,
        prevent_core: Any = True,
        detach_process: Any = None,
        files_preserve: Any = None,
        pidfile: Any = None,
        stdin: Any = None,
        stdout: Any = None,
        stderr: Any = None,
        signal_map: Any = None,
    ) -> None:
        self.chroot_directory = chroot_directory
        self.working_directory = working_directory
        self.umask = umask
        self.uid = os.getuid() if uid is None else uid
        self.gid = os.getgid() if gid is None else gid
        self.initgroups = initgroups
        self.prevent_core = prevent_core
        if detach_process is None:
            detach_process = is_detach_process_context_required()
        self.detach_process = detach_process
        self.files_preserve = files_preserve
        self.pidfile = pidfile
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.signal_map = make_default_signal_map() if signal_map is None else signal_map
        self._is_open = False
        self._core: _CoreContext | None = None

    @property
    def is_open(self) -> bool:
        return self._is_open

    def open(self) -> None:
        """Become a daemon: daemonkit's steps (see
        :meth:`daemonkit.DaemonContext.open`) with these attributes.

        Whatever python-daemon would find wrong only in the daemon (an
        unknown ``signal_map`` method, a pidfile already locked) is raised
        here, in the launcher, before forking.
        """
        if self._is_open:
            return
        handlers = self._signal_handlers()
        pidfile = self.pidfile
        if isinstance(pidfile, PIDLockFile):
            pidfile.lock(path=self._path_seen_by_daemon(pidfile.path), service_uid=self._new_uid())
        try:
            core = self._core_context(handlers)
            core.open()  # in the launcher, returns only when not detaching
        except BaseException:
            if isinstance(pidfile, PIDLockFile):
                pidfile.__exit__(None, None, None)
            raise
        self._core = core
        self._is_open = True
        atexit.register(self.close)  # as python-daemon does; close() runs once

    def _new_uid(self) -> int | None:
        """The uid the daemon drops to, if it changes owner as root."""
        if os.geteuid() != 0 or (self.uid, self.gid) == (os.getuid(), os.getgid()):
            return None
        return self.uid if isinstance(self.uid, int) else None

    def _core_context(self, handlers: dict[int, Any]) -> _CoreContext:
        uid, gid = self.uid, self.gid
        changes_owner = (uid, gid) != (os.getuid(), os.getgid())
        return _CoreContext(
            pidfile=self.pidfile,
            detach=bool(self.detach_process),
            working_directory=self.working_directory,
            umask=self.umask,
            stdin=self.stdin,
            stdout=self.stdout,
            stderr=self.stderr,
            files_preserve=self.files_preserve or (),
            user=uid if changes_owner else None,
            group=gid if changes_owner else None,
            initgroups=bool(self.initgroups),
            chroot_directory=self.chroot_directory,
            prevent_core=bool(self.prevent_core),
            signal_map=handlers,
            allow_threads=True,  # python-daemon does not check; neither do we here
        )

    def _signal_handlers(self) -> dict[int, Any]:
        handlers = {sig: self._handler(sig, target) for sig, target in dict(self.signal_map).items()}
        # python-daemon leaves SIGHUP alone: the default action ends the daemon.
        handlers.setdefault(signal.SIGHUP, signal.SIG_DFL)
        return handlers

    def _handler(self, sig: int, target: Any) -> Any:
        if not isinstance(target, str):
            return target  # a handler, SIG_IGN/SIG_DFL, or None (ignore)
        method = getattr(self, target, None)
        if not callable(method):
            raise DaemonError(
                f"signal_map: {target!r} for signal {sig} is not a method of {type(self).__name__}"
            )
        return method

    def _path_seen_by_daemon(self, path: str) -> str:
        """Where python-daemon's daemon opens ``path``: after the chroot
        and the chdir to ``working_directory``."""
        root = self.chroot_directory
        base = os.fspath(self.working_directory)
        inside = os.path.join(base, os.fspath(path))
        if root is None:
            return os.path.abspath(inside)
        return os.path.join(os.path.abspath(root), os.path.normpath(os.path.join("/", inside)).lstrip("/"))

    def close(self) -> None:
        """Leave the daemon context: the pidfile context exits."""
        if not self._is_open:
            return
        core, self._core = self._core, None
        if core is not None:
            core.close()
        elif self.pidfile is not None:
            self.pidfile.__exit__(None, None, None)
        self._is_open = False

    def terminate(self, signal_number: int, stack_frame: FrameType | None) -> NoReturn:
        """python-daemon's SIGTERM handler. It raises a SystemExit with
        python-daemon's message but status 0, not python-daemon's status 1,
        so that a requested stop counts as a clean exit."""
        raise TerminateSignal(signal_number)

    def __enter__(self) -> DaemonContext:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def make_default_signal_map() -> dict[int, Any]:
    """python-daemon's default: job-control signals ignored, SIGTERM ends
    the daemon through ``terminate``."""
    names = {"SIGTSTP": None, "SIGTTIN": None, "SIGTTOU": None, "SIGTERM": "terminate"}
    return {getattr(signal, name): target for name, target in names.items() if hasattr(signal, name)}


def is_process_started_by_init() -> bool:
    return os.getppid() == 1


def is_socket_file(file: Any) -> bool:
    """Whether ``file`` (anything with fileno()) is a socket."""
    try:
        return stat.S_ISSOCK(os.fstat(file.fileno()).st_mode)
    except (AttributeError, OSError, ValueError):
        return False


def is_process_started_by_superserver() -> bool:
    """inetd hands its children a socket as stdin."""
    return is_socket_file(sys.__stdin__)


def is_detach_process_context_required() -> bool:
    """python-daemon's rule: detach unless init or a superserver started
    us. (daemonkit's own API also recognizes systemd's environment.)"""
    return not (is_process_started_by_init() or is_process_started_by_superserver())
