"""``daemonkit start|stop|restart|status|reload|list|run|unit``: any command
as a daemon.

A thin layer over the public API: argument parsing, naming (NAME ->
RUNDIR/NAME.pid), records and messages.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys

import daemonkit

from .common import PROG, UsageError, fail
from .launch import add_run_options, cmd_restart, cmd_run, cmd_start, cmd_unit, parse_env, parse_umask
from .manage import cmd_list, cmd_reload, cmd_status, cmd_stop, signal_number


class _Formatter(argparse.HelpFormatter):
    """argparse's own formatter imports shutil (~4 ms, on every start) only
    to ask for the terminal's width; os can answer that."""

    def __init__(self, prog: str) -> None:
        try:
            columns = os.get_terminal_size(sys.stderr.fileno()).columns
        except (OSError, ValueError):
            columns = 80
        super().__init__(prog, width=columns - 2)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Run any command as a well-behaved daemon.", formatter_class=_Formatter
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {daemonkit.__version__}")
    sub = parser.add_subparsers(dest="action", metavar="COMMAND", required=True)
    add_parser = functools.partial(sub.add_parser, formatter_class=_Formatter)

    start = add_parser("start", help="start a command as a daemon")
    add_run_options(start)
    start.add_argument(
        "--wait-ready",
        default="exec",
        metavar="MODE",
        help="exec (default), notify, tcp:HOST:PORT, unix:PATH or file:PATH",
    )
    start.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for readiness (default 30)"
    )
    start.set_defaults(func=cmd_start)

    run = add_parser("run", help="run a command in the foreground (systemd, containers)")
    add_run_options(run)
    run.set_defaults(func=cmd_run)

    def target(name: str, help: str) -> argparse.ArgumentParser:
        p = add_parser(name, help=help)
        p.add_argument("name", nargs="?", metavar="NAME")
        p.add_argument("--pidfile", help="instead of NAME")
        return p

    stop = target("stop", "stop a daemon (TERM, then KILL after --timeout)")
    stop.add_argument("--timeout", type=float, default=10.0, help="seconds before SIGKILL (default 10)")
    stop.add_argument("--signal", type=signal_number, default=signal.SIGTERM, help="default TERM")
    stop.add_argument(
        "--unlocked",
        action="store_true",
        help="also stop the probable writer of a pidfile without a lock (python-daemon, lockfile)",
    )
    stop.set_defaults(func=cmd_stop)
    status = target("status", "show whether a daemon runs (LSB exit codes 0/1/3/4)")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    target("reload", "send SIGHUP").set_defaults(func=cmd_reload)
    restart = target("restart", "stop, then start again with the recorded command")
    restart.add_argument("--timeout", type=float, default=10.0)
    restart.set_defaults(func=cmd_restart)
    unit = add_parser("unit", help="print a systemd service unit for a command")
    unit.add_argument("name", metavar="NAME")
    unit.add_argument("--wait-ready", default="exec", metavar="MODE", help="notify gives Type=notify")
    unit.add_argument("--log", metavar="FILE")
    unit.add_argument("--stdout", metavar="FILE")
    unit.add_argument("--stderr", metavar="FILE")
    unit.add_argument("--chdir", metavar="DIR", default=".")
    unit.add_argument("--umask", type=parse_umask, default=0o022)
    unit.add_argument("--user")
    unit.add_argument("--group")
    unit.add_argument("--env", action="append", default=[], type=parse_env, metavar="K=V")
    unit.add_argument("--install", action="store_true", help="write it where systemd looks for it")
    unit.add_argument("command", nargs="*", help="-- COMMAND [ARGS...]")
    unit.set_defaults(func=cmd_unit)

    listing = add_parser("list", help="list the daemons in RUNDIR")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    # Everything after the first "--" is the command, untouched: argparse's
    # own handling of "--" after a subcommand's positionals is unreliable.
    command: list[str] | None = None
    if "--" in argv:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1 :]
    args = parser.parse_args(argv)
    if command is not None:
        if not hasattr(args, "command") or args.command:
            parser.error("unexpected arguments before or after --")
        args.command = command
    try:
        return int(args.func(args))
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        return fail(str(exc), 2)
    except daemonkit.DaemonError as exc:
        return fail(str(exc), 1)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return fail(f"{where}{exc.strerror or exc}", 1)
    except KeyboardInterrupt:
        return 130
