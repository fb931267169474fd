"""``run``: a command in the foreground, under a service manager or as a
container's PID 1."""

from __future__ import annotations

import os
import sys

from . import command, privileges, steps
from .errors import DaemonError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any


def run(
    argv: Sequence[str],
    *,
    pidfile: Any = None,
    env: Mapping[str, str] | None = None,
    working_directory: str | os.PathLike[str] = "/",
    umask: int = 0o022,
    stdin: Any = None,
    stdout: Any = None,
    stderr: Any = None,
    user: privileges.UserSpec = None,
    group: privileges.UserSpec = None,
) -> int:
    """Run ``argv`` in the foreground with the daemon's settings applied.

    The pidfile, stdio files, umask, chdir, environment and user still
    apply; nothing forks. The command replaces this process (this function
    does not return) unless we are PID 1 (a container): then it runs as our
    child, signals are passed on to it, orphans are reaped, and its exit
    status is returned.

    The command stays in its caller's process group: ``stop`` then signals
    the command alone, never its siblings in a shell script (see kill.py).
    """
    if pidfile is not None and os.getpid() == 1:
        # A pidfile naming PID 1 means nothing outside the container and is
        # refused by every reader (RELIABILITY 8); the runtime tracks PID 1.
        raise DaemonError("--pidfile has no meaning for a container's PID 1: the runtime tracks it; drop it")
    executable, plan = command.prepare(
        argv,
        env,
        pidfile=pidfile,
        working_directory=working_directory,
        umask=umask,
        streams=(stdin, stdout, stderr),
        user=user,
        group=group,
    )
    try:
        steps.become_daemon(plan, None, detached=False)
    except BaseException:
        if plan.pidfile is not None:
            plan.pidfile.release()
        raise
    if os.getpid() == 1:
        return _init(executable, list(argv))
    if plan.pidfile is not None:
        plan.pidfile.inherit()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(executable, list(argv), os.environ)
    raise AssertionError("unreachable")  # pragma: no cover


# Signals an init passes on to its child (tini forwards the same set).
_FORWARDED = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGCONT")


def _init(executable: str, argv: list[str]) -> int:
    """PID 1: run the command as a child, forward signals, reap everyone.

    PID 1 gets no default signal actions from the kernel, so without a
    handler SIGTERM would do nothing; and orphans re-parented to PID 1 would
    stay zombies forever if nobody waited for them.
    """
    import signal

    from . import signals

    child = os.fork()
    if child == 0:
        try:
            signals.reset(for_exec=True)
            os.execve(executable, argv, os.environ)
        finally:
            os._exit(127)
    for name in _FORWARDED:
        signal.signal(getattr(signal, name), lambda sig, frame: os.kill(child, sig))
    while True:
        pid, status = os.wait()  # handlers run between waits (PEP 475)
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            _reap_remaining()
            return code if code >= 0 else 128 - code


def _reap_remaining() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
