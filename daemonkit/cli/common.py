"""What every command shares: names, RUNDIR, and one-line messages."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # see daemonkit/__init__.py
if TYPE_CHECKING:
    from argparse import Namespace as Args

PROG = "daemonkit"
_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@+-")


class UsageError(Exception):
    """A bad argument: one line on stderr, exit status 2."""


def rundir() -> str:
    """Where pidfiles live by default: /run/daemonkit for root, else
    $XDG_RUNTIME_DIR/daemonkit, else ~/.local/state/daemonkit.
    $DAEMONKIT_RUNDIR overrides all three."""
    override = os.environ.get("DAEMONKIT_RUNDIR")
    if override:
        return os.path.abspath(override)
    if os.geteuid() == 0:
        return "/run/daemonkit"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "daemonkit")
    return os.path.expanduser("~/.local/state/daemonkit")


def check_name(name: str) -> str:
    """Letters, digits and . _ @ + -, starting with a letter or digit: a
    file name in RUNDIR, and a systemd unit name."""
    if not name or not name[0].isascii() or not name[0].isalnum() or not set(name) <= _NAME_CHARACTERS:
        raise UsageError(f"invalid name {name!r}: use letters, digits and . _ @ + - (no slashes)")
    return name


def pidfile_of(args: Args) -> tuple[str, str]:
    """(name, pidfile) from NAME or --pidfile."""
    if args.pidfile:
        path = os.path.abspath(args.pidfile)
        return args.name or os.path.basename(path).removesuffix(".pid"), path
    if not args.name:
        raise UsageError("give a NAME or --pidfile")
    return args.name, os.path.join(rundir(), check_name(args.name) + ".pid")


def ensure_rundir(pidfile: str) -> None:
    """Create the default RUNDIR (0755 for root, 0700 for a user). An
    explicit --pidfile in a missing directory stays an error."""
    directory = rundir()
    if os.path.dirname(pidfile) != directory or os.path.isdir(directory):
        return
    mode = 0o755 if os.geteuid() == 0 else 0o700
    try:
        os.makedirs(directory, mode=mode, exist_ok=True)
        os.chmod(directory, mode)
    except OSError as exc:
        from daemonkit.errors import DaemonError

        raise DaemonError(
            f"cannot create {directory}: {exc.strerror}; set DAEMONKIT_RUNDIR to a writable directory, "
            "or give --pidfile"
        ) from None


def error(message: str) -> None:
    try:
        sys.stderr.write(f"{PROG}: {message}\n")
    except OSError:  # the terminal is gone (a hangup): nobody to tell
        pass


def say(message: str) -> None:
    """One line on stdout; a terminal that went away is not an error."""
    try:
        print(message)
    except OSError:
        pass


def hint_target(name: str, pidfile: str, args: Args) -> str:
    """How the user named the daemon, for hints: NAME or --pidfile P."""
    import shlex

    return f"--pidfile {shlex.quote(pidfile)}" if getattr(args, "pidfile", None) else name


def fail(message: str, status: int) -> int:
    error(message)
    return status
