"""``daemonkit start|stop|restart|status|reload|list|logs|run|unit``: any command
as a daemon.

A thin layer over the public API: argument parsing, naming (NAME ->
RUNDIR/NAME.pid), records and messages.
"""

from __future__ import annotations

import os
import sys

import daemonkit

from .common import PROG, UsageError, fail
from .launch import cmd_restart, cmd_run, cmd_start, cmd_unit, parse_env, parse_umask
from .logs import OPTIONS as LOGS_OPTIONS
from .logs import cmd_logs
from .manage import cmd_forget, cmd_list, cmd_reload, cmd_status, cmd_stop, signal_number
from .parse import NAME, OPTIONAL_NAME, Command, Option, Program, count, duration, seconds, size, wait_ready
from .supervised import cmd_rotate, policy, timestamps

_STREAMS = (
    Option("--log", "append stdout and stderr to FILE", metavar="FILE"),
    Option("--stdout", "append stdout to FILE", metavar="FILE"),
    Option("--stderr", "append stderr to FILE", metavar="FILE"),
)
# Unlike daemonize() (daemon(7): "/"), the CLI runs the command where you
# are, as `nohup cmd &` would: `daemonkit start -- node app.js` must find app.js.
_PROCESS = (
    Option("--chdir", "working directory (default: the current one)", metavar="DIR", default="."),
    Option("--umask", "octal (default: 022)", convert=parse_umask, default=0o022),
    Option("--user", "run as this user (name or uid); needs root"),
    Option("--group", "run with this group (name or gid); needs root"),
    Option(
        "--env", "set an environment variable (repeatable)", metavar="K=V", convert=parse_env, repeat=True
    ),
)
# systemd's KillSignal=, TimeoutStopSec= and the signal of ExecReload=.
_SIGNALS = (
    Option("--stop-signal", "signal that stops it (default TERM; PostgreSQL: INT)", metavar="SIG"),
    Option("--stop-timeout", "seconds from it to SIGKILL (default 10)", metavar="SEC", convert=seconds),
    Option("--reload-signal", "signal that reloads it (default HUP)", metavar="SIG"),
)
_RUN_OPTIONS = (
    Option("--name", "the daemon's name (default: the command's basename)"),
    Option("--pidfile", "default: RUNDIR/NAME.pid"),
    *_STREAMS,
    *_PROCESS,
    Option("--clear-env", "start from an empty environment", metavar=None),
)
_PIDFILE = Option("--pidfile", "instead of NAME")
_RESTART = (
    Option(
        "--restart",
        "no (default: exec it, nothing resident), on-failure or always",
        metavar="POLICY",
        convert=policy,
        default="no",
    ),
    Option(
        "--restart-sec",
        "first delay before a restart (default 100ms)",
        metavar="D",
        convert=duration,
        default=0.1,
    ),
)
# `start --restart`: the supervisor's settings (docs/supervise.md).
_SUPERVISE = (
    *_RESTART,
    Option(
        "--restart-max-delay",
        "the delay doubles up to this (default 30s)",
        metavar="D",
        convert=duration,
        default=30.0,
    ),
    Option(
        "--min-uptime",
        "a run this long resets the delay (default 1s)",
        metavar="D",
        convert=duration,
        default=1.0,
    ),
    Option(
        "--start-limit-burst",
        "short runs in a row before fatal (default 10)",
        metavar="N",
        convert=count,
        default=10,
    ),
    Option(
        "--log-max-size",
        "rotate the log at this size (default 10M; 0: never)",
        metavar="SIZE",
        convert=size,
        default=10 << 20,
    ),
    Option("--log-keep", "archives kept (default 5)", metavar="N", convert=count, default=5),
    Option("--log-timestamps", "none (default) or iso", metavar="MODE", convert=timestamps, default="none"),
    Option(
        "--watchdog-sec",
        "kill (SIGABRT) and restart an app silent this long (notify)",
        metavar="D",
        convert=duration,
        default=0.0,
    ),
)

PROGRAM = Program(
    PROG,
    "Run any command as a well-behaved daemon.",
    f"{PROG} {daemonkit.__version__}",
    (
        Command(
            "start",
            "start a command as a daemon",
            cmd_start,
            (
                *_RUN_OPTIONS,
                Option(
                    "--wait-ready",
                    "exec (default), notify, fd, tcp:HOST:PORT, unix:PATH or file:PATH",
                    metavar="MODE",
                    convert=wait_ready,
                    default="exec",
                ),
                Option(
                    "--timeout", "seconds to wait for readiness (default 30)", convert=seconds, default=30.0
                ),
                *_SIGNALS,
                *_SUPERVISE,
            ),
            takes_command=True,
        ),
        Command(
            "run",
            "run a command in the foreground (systemd, containers)",
            cmd_run,
            _RUN_OPTIONS,
            takes_command=True,
        ),
        Command(
            "stop",
            "stop a daemon (TERM, then KILL after the stop timeout)",
            cmd_stop,
            (
                _PIDFILE,
                Option("--timeout", "seconds before SIGKILL (default: recorded, else 10)", convert=seconds),
                Option("--signal", "default: recorded, else TERM", convert=signal_number),
                Option(
                    "--unlocked",
                    "also stop the probable writer of a pidfile without a lock (python-daemon, lockfile)",
                    metavar=None,
                ),
            ),
            takes_name=OPTIONAL_NAME,
        ),
        Command(
            "status",
            "show whether a daemon runs (LSB exit codes 0/1/3/4)",
            cmd_status,
            (_PIDFILE, Option("--json", metavar=None)),
            takes_name=OPTIONAL_NAME,
        ),
        Command(
            "reload",
            "send the reload signal (default HUP), if the daemon handles it",
            cmd_reload,
            (
                _PIDFILE,
                Option("--signal", "default: recorded, else HUP", convert=signal_number),
                Option("--force", "send it even if the daemon would die of it or ignores it", metavar=None),
            ),
            takes_name=OPTIONAL_NAME,
        ),
        Command(
            "restart",
            "stop, then start again with the recorded command",
            cmd_restart,
            (
                _PIDFILE,
                Option("--timeout", "seconds before SIGKILL (default: recorded, else 10)", convert=seconds),
            ),
            takes_name=OPTIONAL_NAME,
        ),
        Command(
            "forget",
            "remove the record of a stopped daemon",
            cmd_forget,
            (_PIDFILE,),
            takes_name=OPTIONAL_NAME,
        ),
        Command(
            "unit",
            "print a systemd service unit for a command",
            cmd_unit,
            (
                Option("--wait-ready", "notify gives Type=notify", metavar="MODE", default="exec"),
                *_STREAMS,
                *_PROCESS,
                *_SIGNALS,
                Option("--install", "write it where systemd looks for it", metavar=None),
                *_RESTART,
            ),
            takes_name=NAME,
            takes_command=True,
        ),
        Command("list", "list the daemons in RUNDIR", cmd_list, (Option("--json", metavar=None),)),
        Command(
            "logs",
            "show the last lines of a daemon's log, across its archives",
            cmd_logs,
            LOGS_OPTIONS,
            takes_name=OPTIONAL_NAME,
        ),
        Command(
            "rotate",
            "rotate a supervised daemon's log now (or reopen it after mv)",
            cmd_rotate,
            (_PIDFILE,),
            takes_name=OPTIONAL_NAME,
        ),
    ),
)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        revived = _start_from_record(argv)
        if revived is not None:
            return revived
        args = PROGRAM.parse(argv)
        return int(args.func(args))
    except UsageError as exc:
        PROGRAM.print_usage(argv[0] if argv else None)
        return fail(str(exc), 2)
    except daemonkit.DaemonError as exc:
        return fail(str(exc), 1)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return fail(f"{where}{exc.strerror or exc}", 1)
    except KeyboardInterrupt:
        return 130


def _start_from_record(argv: list[str]) -> int | None:
    """``start NAME``, exactly: NAME's record, if it has one (docs/cli.md)."""
    if len(argv) != 2 or argv[0] != "start" or argv[1].startswith("-"):
        return None
    from .common import check_name, rundir
    from .supervised import start_from_record

    name = argv[1]
    try:
        check_name(name)
    except UsageError:
        return None
    return start_from_record(name, os.path.join(rundir(), name + ".pid"))


def script() -> None:
    """The ``daemonkit`` command: main(), then exit without tearing the
    interpreter down: the CLI registers no atexit handlers and holds no
    buffered files but stdout and stderr, and tearing down the modules
    argparse and json bring would add ~3 ms to every command."""
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a closed pipe: the output is lost either way
        code = code or 1
    os._exit(code)
