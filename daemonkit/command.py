"""A command about to become a daemon or a service: where its program is,
which environment it gets, and the last steps before exec.

The command is exec'ed: it *becomes* the daemon, with no daemonkit process
left beside it, and it inherits the pidfile's lock fd, so the lock lives
exactly as long as the command.
"""

from __future__ import annotations

import os

from .errors import DaemonError, StartupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from .steps import Plan

# The command is not the process a service manager started for its unit.
_MANAGER_VARS = (
    "NOTIFY_SOCKET",
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "WATCHDOG_PID",
    "WATCHDOG_USEC",
)


def find_executable(command: str, path: str | None) -> str:
    """The file ``command`` would exec, or StartupError 127 / 126 as a shell says."""
    if "/" in command:
        candidates = [command]
    else:
        candidates = [os.path.join(d or ".", command) for d in (path or os.defpath).split(os.pathsep)]
    found_but_not_executable = None
    for candidate in candidates:
        if os.path.isfile(candidate):
            if os.access(candidate, os.X_OK):
                return os.path.abspath(candidate)
            found_but_not_executable = candidate
    if found_but_not_executable is not None:
        raise StartupError(f"not executable: {found_but_not_executable}", 126)
    if "/" in command and os.path.isdir(command):
        raise StartupError(f"is a directory: {command}", 126)
    raise StartupError(f"command not found: {command}", 127)


def command_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """The command's environment: ``env``, or ours, without the variables a
    service manager meant for us, not for the command."""
    environ = dict(os.environ if env is None else env)
    for var in _MANAGER_VARS:
        environ.pop(var, None)
    return environ


def prepare(argv: Sequence[str], env: Mapping[str, str] | None, **options: Any) -> tuple[str, Plan]:
    """Step 1 for a command (spawn() and run()): its program, found now, and
    the plan, prepared in the launcher. ``options`` are steps.Plan's. The
    command keeps its own core-dump limit and opens its own logs; with a
    user, it gets that user's HOME, USER, LOGNAME and SHELL, as systemd's
    User= gives them."""
    from . import privileges, steps

    if not argv:
        raise DaemonError("no command given")
    environ = command_env(env)
    executable = find_executable(argv[0], environ.get("PATH"))
    plan = steps.Plan(env=environ, prevent_core=False, preserve_logging=False, for_exec=True, **options)
    steps.prepare(plan, allow_threads=True)
    privileges.apply_user_environment(plan.env, options.get("user"), plan.creds, inherited=env is None)
    return executable, plan
