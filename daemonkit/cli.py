"""``daemonkit start|stop|restart|status|reload|list|run``: any command as a daemon.

A thin layer over the public API: everything here is argument parsing,
naming (NAME -> RUNDIR/NAME.pid), records and messages.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import signal
import sys
import time

import daemonkit

TYPE_CHECKING = False  # see __init__.py
if TYPE_CHECKING:
    from typing import Any

PROG = "daemonkit"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]*\Z")
LOG_TAIL_LINES = 10


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


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise UsageError(f"invalid name {name!r}: use letters, digits and . _ @ + - (no slashes)")
    return name


def _pidfile_of(args: argparse.Namespace) -> tuple[str, str]:
    """(name, pidfile) from NAME or --pidfile."""
    if args.pidfile:
        path = os.path.abspath(args.pidfile)
        return args.name or os.path.basename(path).removesuffix(".pid"), path
    if not args.name:
        raise UsageError("give a NAME or --pidfile")
    return args.name, os.path.join(rundir(), _check_name(args.name) + ".pid")


# -- start / run -------------------------------------------------------------


def _parse_umask(text: str) -> int:
    try:
        value = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid umask {text!r}: use octal, such as 022") from None
    if not 0 <= value <= 0o777:
        raise argparse.ArgumentTypeError(f"invalid umask {text!r}: use octal, such as 022")
    return value


def _parse_env(text: str) -> str:
    if "=" not in text or text.startswith("="):
        raise argparse.ArgumentTypeError(f"invalid --env {text!r}: use KEY=VALUE")
    return text


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help="the daemon's name (default: the command's basename)")
    parser.add_argument("--pidfile", help="default: RUNDIR/NAME.pid")
    parser.add_argument("--log", metavar="FILE", help="append stdout and stderr to FILE")
    parser.add_argument("--stdout", metavar="FILE", help="append stdout to FILE")
    parser.add_argument("--stderr", metavar="FILE", help="append stderr to FILE")
    # Unlike daemonize() (daemon(7): "/"), the CLI runs the command where you
    # are, as `nohup cmd &` would: `daemonkit start -- node app.js` must find app.js.
    parser.add_argument(
        "--chdir", metavar="DIR", default=".", help="working directory (default: the current one)"
    )
    parser.add_argument("--umask", type=_parse_umask, default=0o022, help="octal (default: 022)")
    parser.add_argument("--user", help="run as this user (name or uid); needs root")
    parser.add_argument("--group", help="run with this group (name or gid); needs root")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        type=_parse_env,
        metavar="K=V",
        help="set an environment variable (repeatable)",
    )
    parser.add_argument("--clear-env", action="store_true", help="start from an empty environment")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")


def _command_of(args: argparse.Namespace) -> list[str]:
    command = list(args.command)
    if not command:
        raise UsageError("no command given: daemonkit start [options] -- COMMAND [ARGS...]")
    return command


def _environment(args: argparse.Namespace) -> dict[str, str] | None:
    if not args.env and not args.clear_env:
        return None
    environ = {} if args.clear_env else dict(os.environ)
    for item in args.env:
        key, _, value = item.partition("=")
        environ[key] = value
    return environ


def _streams(args: argparse.Namespace, default_log: str | None) -> dict[str, str | None]:
    log = args.log or (None if args.stdout or args.stderr else default_log)
    stdout = args.stdout or log
    stderr = args.stderr or log
    return {name: os.path.abspath(p) if p else None for name, p in (("stdout", stdout), ("stderr", stderr))}


def _context_options(args: argparse.Namespace, default_log: str | None) -> dict[str, Any]:
    user: str | int | None = int(args.user) if args.user and args.user.isdigit() else args.user
    group: str | int | None = int(args.group) if args.group and args.group.isdigit() else args.group
    return {
        "working_directory": os.path.abspath(args.chdir),
        "umask": args.umask,
        "user": user,
        "group": group,
        "env": _environment(args),
        **_streams(args, default_log),
    }


def _ensure_rundir(pidfile: str) -> None:
    """Create the default RUNDIR (0755 for root, 0700 for a user). An
    explicit --pidfile in a missing directory stays an error."""
    directory = rundir()
    if os.path.dirname(pidfile) != directory or os.path.isdir(directory):
        return
    mode = 0o755 if os.geteuid() == 0 else 0o700
    os.makedirs(directory, mode=mode, exist_ok=True)
    os.chmod(directory, mode)


class _Progress:
    """One updating line on a terminal while start waits: "waiting for X … 3 s"."""

    def __init__(self) -> None:
        self.shown = False
        self.tty = sys.stderr.isatty()

    def __call__(self, what: str, seconds: float) -> None:
        if self.tty:
            sys.stderr.write(f"\r\033[Kwaiting for {what} … {int(seconds)} s")
            sys.stderr.flush()
            self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def _log_tail(paths: list[str | None]) -> list[str]:
    for path in dict.fromkeys(p for p in paths if p):
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 8192))
                lines = f.read().decode("utf-8", "replace").splitlines()[-LOG_TAIL_LINES:]
        except OSError:
            continue
        if lines:
            return [f"last lines of {path}:"] + [f"  | {line}" for line in lines]
    return []


def cmd_start(args: argparse.Namespace) -> int:
    from daemonkit import record  # json: loaded only where records are used

    command = _command_of(args)
    args.name = _check_name(args.name or os.path.basename(command[0]))
    name, pidfile = _pidfile_of(args)
    options = _context_options(args, default_log=pidfile.removesuffix(".pid") + ".log")
    _ensure_rundir(pidfile)
    progress = _Progress()
    started = time.monotonic()
    try:
        pid = daemonkit.spawn(
            command,
            pidfile=pidfile,
            wait_ready=args.wait_ready,
            timeout=args.timeout,
            on_wait=progress,
            **options,
        )
    except daemonkit.AlreadyRunning as exc:
        progress.clear()
        return _fail(f"{name}: already running (pid {exc.pid}); see '{PROG} status {name}'", 1)
    except daemonkit.StartupError as exc:
        progress.clear()
        _error(f"{name}: {exc}")
        for line in _log_tail([options["stderr"], options["stdout"]]):
            sys.stderr.write(line + "\n")
        return exc.exit_status
    finally:
        progress.clear()
    elapsed_ms = (time.monotonic() - started) * 1000
    record.write(
        pidfile,
        {
            "name": name,
            "pid": pid,
            "command": command,
            "started": time.time(),
            "options": {**vars(args), "command": command, "pidfile": pidfile, "func": None},
        },
    )
    print(f"started {name} (pid {pid}), ready in {elapsed_ms:.0f} ms")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    command = _command_of(args)
    pidfile = os.path.abspath(args.pidfile) if args.pidfile else None
    if args.name and not pidfile:
        pidfile = os.path.join(rundir(), _check_name(args.name) + ".pid")
        _ensure_rundir(pidfile)
    try:
        return daemonkit.run(command, pidfile=pidfile, **_context_options(args, default_log=None))
    except daemonkit.AlreadyRunning as exc:
        return _fail(f"{args.name or command[0]}: already running (pid {exc.pid})", 1)
    except daemonkit.StartupError as exc:
        return _fail(str(exc), exc.exit_status)


# -- stop / status / reload / restart / list ---------------------------------


def _signal_number(text: str) -> int:
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    if name.removeprefix("SIG").isdigit():
        return int(name.removeprefix("SIG"))
    if not hasattr(signal, name) or name.startswith("SIG_"):
        raise argparse.ArgumentTypeError(f"unknown signal {text!r}")
    return int(getattr(signal, name))


def cmd_stop(args: argparse.Namespace) -> int:
    name, pidfile = _pidfile_of(args)
    state = daemonkit.status(pidfile)
    if state.state == "unknown":
        return _fail(f"{name}: {state.reason}", 1)
    if not state.running:
        suffix = " (stale pidfile); removed it" if state.stale_pidfile else ""
        daemonkit.stop(pidfile)
        print(f"{name}: not running{suffix}")
        return 0
    started = time.monotonic()

    def on_kill(pid: int) -> None:
        sig = signal.Signals(args.signal).name
        print(f"{name}: still running {args.timeout:g} s after {sig}; sending SIGKILL", file=sys.stderr)

    try:
        daemonkit.stop(pidfile, args.timeout, signal=args.signal, on_kill=on_kill, unlocked=args.unlocked)
    except daemonkit.UnlockedPidFile as exc:
        return _fail(f"{name}: {exc}; stop it with '{PROG} stop --unlocked {name}'", 1)
    except daemonkit.StopError as exc:
        return _fail(f"{name}: could not stop it: {exc}", 1)
    print(f"stopped {name} (pid {state.pid}) in {(time.monotonic() - started) * 1000:.0f} ms")
    return 0


def _uptime(started: float | None) -> str:
    if started is None:
        return "-"
    seconds = int(max(0, time.time() - started))
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")]
    shown = [f"{value}{unit}" for value, unit in parts if value][:2]
    return " ".join(shown) or "0s"


def _describe(name: str, pidfile: str) -> dict[str, Any]:
    from daemonkit import record  # json: loaded only where records are used

    state = daemonkit.status(pidfile)
    recorded = record.read(pidfile) or {}
    return {
        "name": name,
        "state": state.state,
        "pid": state.pid,
        "started": state.started,
        "uptime": _uptime(state.started) if state.running else None,
        "command": recorded.get("command"),
        "pidfile": pidfile,
        "reason": state.reason,
        "locked": state.locked,
        "lsb": state.lsb_code,
    }


def cmd_status(args: argparse.Namespace) -> int:
    name, pidfile = _pidfile_of(args)
    info = _describe(name, pidfile)
    if args.json:
        import json

        print(json.dumps(info))
        return int(info["lsb"])
    state = info["state"]
    if state == "running":
        unlocked = "" if info["locked"] else "; its pidfile holds no lock (not written by daemonkit)"
        print(f"{name}: running (pid {info['pid']}), up {info['uptime']}{unlocked}")
    elif state == "stale":
        print(f"{name}: not running, but its pidfile is left behind (stale); '{PROG} stop {name}' removes it")
    elif state == "stopped":
        print(f"{name}: not running")
    else:
        print(f"{name}: unknown: {info['reason']}")
    if info["command"]:
        print(f"  command  {' '.join(info['command'])}")
    print(f"  pidfile  {pidfile}")
    return int(info["lsb"])


def cmd_reload(args: argparse.Namespace) -> int:
    name, pidfile = _pidfile_of(args)
    if not daemonkit.reload(pidfile):
        return _fail(f"{name}: not running", 3)
    print(f"{name}: sent SIGHUP")
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    from daemonkit import record  # json: loaded only where records are used

    name, pidfile = _pidfile_of(args)
    recorded = record.read(pidfile)
    if not recorded or not isinstance(recorded.get("options"), dict):
        return _fail(
            f"{name}: no record of how it was started ({record.path_for(pidfile)}); use '{PROG} start'", 1
        )
    try:
        daemonkit.stop(pidfile, args.timeout)
    except daemonkit.StopError as exc:
        return _fail(f"{name}: could not stop it: {exc}", 1)
    start_args = argparse.Namespace(**recorded["options"])
    return cmd_start(start_args)


def cmd_list(args: argparse.Namespace) -> int:
    directory = rundir()
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        entries = []
    names = sorted({e.rsplit(".", 1)[0] for e in entries if e.endswith((".pid", ".json"))})
    rows = [_describe(n, os.path.join(directory, n + ".pid")) for n in names]
    if args.json:
        import json

        print(json.dumps(rows))
        return 0
    if not rows:
        print(f"no daemons in {directory}")
        return 0
    table = [("NAME", "PID", "STATE", "UPTIME", "COMMAND")] + [
        (r["name"], str(r["pid"] or "-"), r["state"], r["uptime"] or "-", " ".join(r["command"] or []))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])
    return 0


def _unit_directory() -> tuple[str, str, str]:
    """(directory, WantedBy target, systemctl prefix) for --install."""
    if os.geteuid() == 0:
        return "/etc/systemd/system", "multi-user.target", "systemctl"
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return os.path.join(config, "systemd", "user"), "default.target", "systemctl --user"


def cmd_unit(args: argparse.Namespace) -> int:
    from daemonkit.spawn import find_executable
    from daemonkit.unit import service_unit

    command = _command_of(args)
    name = _check_name(args.name)
    environ = dict(item.partition("=")[::2] for item in args.env)
    executable = find_executable(command[0], os.environ.get("PATH"))
    streams = _streams(args, default_log=None)
    directory, wanted_by, systemctl = _unit_directory()
    text = service_unit(
        name,
        [executable, *command[1:]],
        notify=args.wait_ready == "notify",
        user=args.user,
        group=args.group,
        working_directory=os.path.abspath(args.chdir),
        umask=args.umask,
        env=environ,
        stdout=streams["stdout"],
        stderr=streams["stderr"],
        wanted_by=wanted_by,
    )
    if args.wait_ready not in ("exec", "notify"):
        _error(f"note: --wait-ready {args.wait_ready} has no systemd equivalent; the unit uses Type=exec")
    if not args.install:
        sys.stdout.write(text)
        return 0
    path = os.path.join(directory, f"{name}.service")
    if os.path.lexists(path):
        return _fail(f"{path} exists; remove it first, or print the unit without --install", 1)
    os.makedirs(directory, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    _error(f"installed {path}; next: {systemctl} daemon-reload && {systemctl} enable --now {name}")
    return 0


# -- plumbing ----------------------------------------------------------------


def _error(message: str) -> None:
    sys.stderr.write(f"{PROG}: {message}\n")


def _fail(message: str, status: int) -> int:
    _error(message)
    return status


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
    _add_run_options(start)
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
    _add_run_options(run)
    run.set_defaults(func=cmd_run)

    def target(name: str, help: str) -> argparse.ArgumentParser:
        p = add_parser(name, help=help)
        p.add_argument("name", nargs="?", metavar="NAME")
        p.add_argument("--pidfile", help="instead of NAME")
        return p

    stop = target("stop", "stop a daemon (TERM, then KILL after --timeout)")
    stop.add_argument("--timeout", type=float, default=10.0, help="seconds before SIGKILL (default 10)")
    stop.add_argument("--signal", type=_signal_number, default=signal.SIGTERM, help="default TERM")
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
    unit.add_argument("--umask", type=_parse_umask, default=0o022)
    unit.add_argument("--user")
    unit.add_argument("--group")
    unit.add_argument("--env", action="append", default=[], type=_parse_env, metavar="K=V")
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
        return _fail(str(exc), 2)
    except daemonkit.DaemonError as exc:
        return _fail(str(exc), 1)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(f"{where}{exc.strerror or exc}", 1)
    except KeyboardInterrupt:
        return 130
