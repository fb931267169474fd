"""python-daemon's API (PEP 3143) on top of daemonkit.

Switching is one line::

    from daemonkit import compat as daemon      # was: import daemon
    import daemonkit.compat.pidfile             # was: import daemon.pidfile

Every python-daemon 3.x constructor argument keeps its meaning. What
changes, and why, is listed in docs/migration.md: the launcher waits for
the daemon and reports its errors, pidfiles are flock-based and cannot go
stale, the default umask is 0o022, and SIGTERM exits with status 0.
"""

from __future__ import annotations

import os

from .. import context as _context
from ..errors import DaemonError
from . import pidfile

TYPE_CHECKING = False  # see daemonkit/__init__.py
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from types import FrameType
    from typing import Any, NoReturn

__all__ = [
    "DaemonContext",
    "DaemonError",
    "DaemonOSEnvironmentError",
    "DaemonProcessDetachError",
    "pidfile",
]


class DaemonOSEnvironmentError(DaemonError, OSError):
    """Changing the process environment failed (python-daemon's name)."""


class DaemonProcessDetachError(DaemonError, OSError):
    """Detaching failed (python-daemon's name)."""


class DaemonContext(_context.DaemonContext):
    """python-daemon's ``DaemonContext``, with daemonkit doing the work.

    ``uid``/``gid`` default to the current ones (no change); ``initgroups``
    chooses the user's supplementary groups (else only ``gid``); ``signal_map``
    values may be handlers, None (ignore) or the name of a method of this
    object, such as ``'terminate'``; ``detach_process`` None detects a
    service manager.
    """

    def __init__(
        self,
        chroot_directory: str | None = None,
        working_directory: str = "/",
        umask: int = 0o022,
        uid: int | None = None,
        gid: int | None = None,
        initgroups: bool = False,
        prevent_core: bool = True,
        detach_process: bool | None = None,
        files_preserve: Iterable[Any] | None = None,
        pidfile: Any = None,
        stdin: Any = None,
        stdout: Any = None,
        stderr: Any = None,
        signal_map: Mapping[int, Any] | None = None,
    ) -> None:
        # python-daemon's uid/gid default to the current ones: no change.
        self.uid = os.getuid() if uid is None else uid
        self.gid = os.getgid() if gid is None else gid
        changes_owner = (self.uid, self.gid) != (os.getuid(), os.getgid())
        super().__init__(
            pidfile=pidfile,
            detach=detach_process,
            working_directory=working_directory,
            umask=umask,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            files_preserve=files_preserve or (),
            user=self.uid if changes_owner else None,
            group=self.gid if changes_owner else None,
            initgroups=initgroups,
            chroot_directory=chroot_directory,
            prevent_core=prevent_core,
            allow_threads=True,  # python-daemon does not check; neither do we here
        )
        self.detach_process = detach_process
        if signal_map is not None:
            self.signal_map = {sig: self._handler(target) for sig, target in signal_map.items()}

    def _handler(self, target: Any) -> Any:
        if target is None:
            return None
        if isinstance(target, str):
            return getattr(self, target)
        return target

    def terminate(self, signal_number: int, stack_frame: FrameType | None) -> NoReturn:
        """python-daemon's SIGTERM handler. It raises SystemExit(0) here, not
        python-daemon's SystemExit("Terminating on signal 15") (status 1),
        so that a requested stop counts as a clean exit."""
        raise SystemExit(0)
