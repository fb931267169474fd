"""The daemon(7) steps, as plain functions over a plan resolved once.

:func:`prepare` runs in the launcher and does everything that can fail
early (step 1): it checks for threads, resolves the user, makes absolute
paths, and locks the pidfile. :func:`become_daemon` runs in the daemon (or,
when nothing forks, in the process itself) and applies steps 4 to 9 in
order. DaemonContext, spawn() and run() are compositions of these two calls
with launch.fork(); the full list of steps, numbered, is in
docs/concepts.md.
"""

from __future__ import annotations

import os
import sys

from . import _posix, privileges, signals, streams, systemd
from .errors import DaemonError
from .pidguard import PidGuard

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

    from .launch import Channel


class Plan:
    """What the daemon will become, resolved in the launcher."""

    def __init__(
        self,
        *,
        pidfile: Any = None,
        working_directory: str | os.PathLike[str] = "/",
        umask: int = 0o022,
        streams: tuple[Any, Any, Any] = (None, None, None),
        files_preserve: Iterable[Any] = (),
        close_fds: bool = True,
        preserve_logging: bool = True,
        user: privileges.UserSpec = None,
        group: privileges.UserSpec = None,
        initgroups: bool = True,
        chroot_directory: str | os.PathLike[str] | None = None,
        prevent_core: bool = True,
        env: Mapping[str, str] | None = None,
        for_exec: bool = False,
    ) -> None:
        self.pidfile = None if pidfile is None else PidGuard(pidfile)
        self.working_directory = os.fspath(working_directory)
        self.umask = umask
        self.streams = tuple(_absolute(target) for target in streams)
        self.files_preserve = list(files_preserve)
        self.close_fds = close_fds
        self.preserve_logging = preserve_logging
        self.user, self.group, self.initgroups = user, group, initgroups
        self.chroot_directory = None if chroot_directory is None else os.path.abspath(chroot_directory)
        self.prevent_core = prevent_core
        self.env = None if env is None else dict(env)
        #: An exec follows the steps: signal dispositions are reset for the
        #: new program (no Python defaults), and no handler is installed.
        self.for_exec = for_exec
        self.creds: privileges.Credentials | None = None
        self.keep: set[int] = set()


def prepare(plan: Plan, *, allow_threads: bool = False) -> Plan:
    """Step 1, in the launcher: everything that can fail early fails here,
    as an exception in the caller's process."""
    # Every module the daemon needs is imported here, before forking:
    # imports after fork() pay a copy-on-write fault per touched page, and
    # after a chroot they may find no files at all.
    import resource  # noqa: F401
    import select  # noqa: F401
    import signal  # noqa: F401

    if not allow_threads and _posix.thread_count() > 1:
        raise DaemonError(
            "other threads are running; forking would copy only this one "
            "(start threads after daemonize(), or pass allow_threads=True)"
        )
    plan.creds = privileges.resolve(plan.user, plan.group, plan.initgroups)
    if plan.chroot_directory is not None:
        import socket  # noqa: F401  (sd_notify)
        import traceback  # noqa: F401  (reload errors)
    streams.ensure_std_fds()
    if plan.pidfile is not None:
        plan.pidfile.lock(service_uid=_service_uid(plan))
    plan.keep = _fds_to_keep(plan)
    return plan


def _service_uid(plan: Plan) -> int | None:
    return plan.creds.uid if plan.creds is not None else None


def become_daemon(plan: Plan, channel: Channel | None, *, detached: bool) -> None:
    """Steps 4 to 9, in the daemon. Raises on failure; the caller reports."""
    signals.reset(for_exec=plan.for_exec)  # 4
    if plan.close_fds:  # 5
        keep = plan.keep | ({channel.fd} if channel is not None and channel.fd is not None else set())
        _posix.close_fds_except(keep)
    # 6: without a fork, a stream left unset stays what the manager gave us.
    streams.redirect(plan.streams, plan.umask, skip_unset=not detached, service_uid=_service_uid(plan))
    os.umask(plan.umask)  # 7
    if plan.chroot_directory is not None:
        privileges.chroot(plan.chroot_directory)
    try:
        os.chdir(plan.working_directory)
    except OSError as exc:
        raise DaemonError(f"cannot chdir to {plan.working_directory}: {exc.strerror}") from exc
    if plan.env is not None:
        os.environ.clear()
        os.environ.update(plan.env)
    if plan.pidfile is not None:  # 8
        plan.pidfile.claim()
    if plan.prevent_core:  # 9
        privileges.prevent_core_dumps()
    if plan.creds is not None:
        privileges.drop(plan.creds)


def _fds_to_keep(plan: Plan) -> set[int]:
    keep: set[int] = set(systemd.listen_fd_range())
    if plan.pidfile is not None:
        keep.update(plan.pidfile.fds())
    for obj in [*plan.files_preserve, *plan.streams]:
        fd = fileno_or_none(obj)
        if fd is not None:
            keep.add(fd)
    if plan.preserve_logging:
        keep.update(_logging_fds())
    return keep


def _absolute(target: Any) -> Any:
    return os.path.abspath(target) if isinstance(target, (str, os.PathLike)) else target


def fileno_or_none(obj: Any) -> int | None:
    """The fd of an int, a file object or a socket; None for anything else."""
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
                fd = fileno_or_none(getattr(handler, attr, None))
                if fd is not None:
                    fds.add(fd)
    return fds
