"""``spawn``: any command as a daemon, returning once it is ready.

The same two calls as DaemonContext (steps.prepare in the launcher,
steps.become_daemon in the daemon) around launch.fork(), then an exec: the
command *becomes* the daemon and inherits the pidfile's lock, so the lock
lives exactly as long as it does. The launcher waits as the readiness mode
says (startup.Startup).
"""

from __future__ import annotations

import os

from . import command, launch, privileges, steps
from .context import describe
from .readiness import READY_FD_VAR, NotifySocket, WaitReady
from .startup import Startup

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any, Callable, NoReturn


def spawn(
    argv: Sequence[str],
    *,
    pidfile: Any = None,
    wait_ready: str = "exec",
    timeout: float | None = 30.0,
    env: Mapping[str, str] | None = None,
    working_directory: str | os.PathLike[str] = "/",
    umask: int = 0o022,
    stdin: Any = None,
    stdout: Any = None,
    stderr: Any = None,
    user: privileges.UserSpec = None,
    group: privileges.UserSpec = None,
    on_wait: Callable[[str, float], object] | None = None,
    after_fork: Callable[[], object] | None = None,
) -> int:
    """Start ``argv`` as a daemon; return its PID once it is ready.

    ``wait_ready`` is a mode of daemonkit.readiness: ``exec``, ``notify``,
    ``fd``, ``tcp:HOST:PORT``, ``unix:PATH`` or ``file:PATH``. ``env`` is
    the command's whole environment (default: ours). The other options are
    DaemonContext's. ``on_wait(what, seconds)`` is called about once a
    second while waiting. ``after_fork()`` is called once the daemon is
    forked, while it starts.

    Raises :class:`AlreadyRunning`, or :class:`StartupError` with the
    command's exit status if it fails before it is ready (127: not found,
    126: not executable). After ``timeout`` seconds, on Ctrl-C or SIGTERM,
    the half-started daemon is stopped and StartupError is raised.
    """
    mode = WaitReady(wait_ready)
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
    notify: NotifySocket | None = None
    try:
        if mode.kind == "notify":
            notify = NotifySocket(*((plan.creds.uid, plan.creds.gid) if plan.creds else ()))
            assert plan.env is not None
            plan.env["NOTIFY_SOCKET"] = notify.path
        mode.before_start()
        forked = launch.fork()
        if isinstance(forked, launch.Channel):
            _become_command(plan, forked, executable, list(argv), mode)
        if notify is not None:
            notify.session = forked.watcher  # only the daemon's session may say READY=1
        if after_fork is not None:
            after_fork()
        pid = Startup(forked, mode, timeout, notify=notify, on_wait=on_wait).wait()
    except BaseException:
        if plan.pidfile is not None:
            plan.pidfile.release()
            plan.pidfile.remove_if_stale()
        raise
    finally:
        if notify is not None:
            notify.close()
    if plan.pidfile is not None:
        plan.pidfile.release()  # our copy only: the lock stays with the daemon
    return pid


def _become_command(
    plan: steps.Plan, channel: launch.Channel, executable: str, argv: list[str], mode: WaitReady
) -> NoReturn:
    """In the daemon: the steps, then exec. Errors go to the launcher."""
    status, stage = 1, "start"
    try:
        steps.become_daemon(plan, channel, detached=True)
        if plan.pidfile is not None:
            plan.pidfile.inherit()
        if mode.kind == "fd" and channel.fd is not None:
            os.set_inheritable(channel.fd, True)
            os.environ[READY_FD_VAR] = str(channel.fd)
        stage = "exec"
        channel.send("EXEC")
        os.execve(executable, argv, os.environ)
    except BaseException as exc:
        if stage == "exec":
            status = 127 if isinstance(exc, FileNotFoundError) else 126
            message = f"cannot execute {executable}: {getattr(exc, 'strerror', None) or exc}"
        else:
            message = describe(exc)
        channel.fail(status, message)
    os._exit(status)
