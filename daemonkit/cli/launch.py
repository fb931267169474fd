"""``start``, ``run``, ``restart`` and ``unit``: the commands that launch
(or describe how to launch) a program."""

from __future__ import annotations

import os
import signal
import sys
import time

import daemonkit

from . import records, supervised
from .common import PROG, UsageError, check_name, ensure_rundir, error, fail, pidfile_of, rundir, say

TYPE_CHECKING = False  # see daemonkit/__init__.py
if TYPE_CHECKING:
    from argparse import Namespace as Args
    from typing import Any

LOG_TAIL_LINES = 10


def parse_umask(text: str) -> int:
    try:
        value = int(text, 8)
    except ValueError:
        raise UsageError(f"invalid umask {text!r}: use octal, such as 022") from None
    if not 0 <= value <= 0o777:
        raise UsageError(f"invalid umask {text!r}: use octal, such as 022")
    return value


def parse_env(text: str) -> str:
    if "=" not in text or text.startswith("="):
        raise UsageError(f"invalid --env {text!r}: use KEY=VALUE")
    return text


def _command_of(args: Args) -> list[str]:
    command = list(args.command)
    if not command:
        raise UsageError(f"no command given: {PROG} {args.action} [options] -- COMMAND [ARGS...]")
    return command


def _environment(args: Args) -> dict[str, str] | None:
    if not args.env and not args.clear_env:
        return None
    environ = {} if args.clear_env else dict(os.environ)
    for item in args.env:
        key, _, value = item.partition("=")
        environ[key] = value
    return environ


def _streams(args: Args, default_log: str | None) -> dict[str, str | None]:
    log = args.log or (None if args.stdout or args.stderr else default_log)
    stdout = args.stdout or log
    stderr = args.stderr or log
    return {name: os.path.abspath(p) if p else None for name, p in (("stdout", stdout), ("stderr", stderr))}


def _spawn_options(args: Args, default_log: str | None) -> dict[str, Any]:
    """spawn()'s keyword arguments, every path absolute: what the record keeps."""
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


class _Progress:
    """One updating line on a terminal while start waits: "waiting for X … 3 s"."""

    def __init__(self) -> None:
        self.shown = False
        self.tty = sys.stderr.isatty()

    def __call__(self, what: str, seconds: float) -> None:
        if self.tty:
            try:
                sys.stderr.write(f"\r\033[Kwaiting for {what} … {int(seconds)} s")
                sys.stderr.flush()
            except OSError:  # the terminal is gone
                self.tty = False
            self.shown = True

    def clear(self) -> None:
        if self.shown and self.tty:
            try:
                sys.stderr.write("\r\033[K")
                sys.stderr.flush()
            except OSError:
                pass


def _log_sizes(paths: list[str | None]) -> dict[str, int]:
    sizes = {}
    for path in dict.fromkeys(p for p in paths if p):
        try:
            sizes[path] = os.stat(path).st_size
        except OSError:
            sizes[path] = 0
    return sizes


def _log_tail(sizes: dict[str, int]) -> list[str]:
    """The last lines this run wrote to its log (not an earlier run's)."""
    from daemonkit import safedir

    for path, offset in sizes.items():
        try:  # as root, not through a symlink another user planted
            with open(safedir.open_file(path, os.O_RDONLY), "rb") as f:
                f.seek(0, os.SEEK_END)
                end = f.tell()
                start = offset if offset <= end else 0  # rotated meanwhile
                f.seek(max(start, end - 8192))
                lines = f.read().decode("utf-8", "replace").splitlines()[-LOG_TAIL_LINES:]
        except (OSError, daemonkit.DaemonError):
            continue
        if lines:
            return [f"last lines of {path}:"] + [f"  | {line}" for line in lines]
    return []


def cmd_start(args: Args) -> int:
    # A hangup (the terminal closed) must not stop a start half-way: it
    # completes and is recorded (the daemon itself never sees it). Only
    # while it starts: main() may run inside a longer-lived process, whose
    # later children would otherwise inherit SIGHUP ignored (exec keeps
    # SIG_IGN, signal(7)) and outlive a closed terminal.
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        return _start_command(args)
    finally:
        if previous is not None:  # None: set outside Python, cannot be restored
            signal.signal(signal.SIGHUP, previous)


def _start_command(args: Args) -> int:
    command = _command_of(args)
    args.name = check_name(args.name or os.path.basename(command[0]))
    name, pidfile = pidfile_of(args)
    controls = records.controls_of(args)
    ensure_rundir(pidfile)
    if supervised.wanted(args):
        options = _spawn_options(args, default_log=None)
        settings = supervised.settings_of(args, pidfile)
        return supervised.start(
            name, pidfile, command, options, controls, settings, args.wait_ready, args.timeout
        )
    supervised.forget(pidfile)
    options = _spawn_options(args, default_log=pidfile.removesuffix(".pid") + ".log")
    return start(name, pidfile, command, options, controls, args.wait_ready, args.timeout)


def start_recorded(name: str, pidfile: str, record: dict[str, Any]) -> int:
    """Start a daemon again as its record says (restart, ``start NAME``)."""
    options = dict(record["spawn"])
    argv = list(options.pop("argv"))
    if record.get("supervise"):
        return supervised.start(
            name,
            pidfile,
            argv,
            options,
            record["controls"],
            record["supervise"],
            record["wait_ready"],
            record["timeout"],
        )
    supervised.forget(pidfile)
    return start(name, pidfile, argv, options, record["controls"], record["wait_ready"], record["timeout"])


def start(
    name: str,
    pidfile: str,
    command: list[str],
    options: dict[str, Any],
    controls: dict[str, Any],
    wait_ready: str,
    timeout: float,
) -> int:
    """Start and record a daemon (exec mode); the exit status of ``start``."""
    record = records.make(name, 0, command, options, controls, wait_ready, timeout)
    spawn_options = {**options, "wait_ready": wait_ready, "timeout": timeout}
    logs = [options["stderr"], options["stdout"]]
    status, pid, elapsed_ms = launch_and_record(name, pidfile, command, spawn_options, logs, record)
    if status == 0:
        say(f"started {name} (pid {pid}), ready in {elapsed_ms:.0f} ms")
    return status


def launch_and_record(
    name: str,
    pidfile: str,
    argv: list[str],
    spawn_options: dict[str, Any],
    logs: list[str | None],
    record: dict[str, Any],
) -> tuple[int, int, float]:
    """spawn() with a progress line, a failed start's messages (and this
    run's last log lines), then the record: (exit status, PID, ms taken).

    The record is written once the daemon is ready. Where it could not be
    believed (a shared directory such as /tmp) the daemon runs unrecorded,
    with a warning; where writing it fails, the daemon is stopped rather
    than left running while start exits 1."""
    progress = _Progress()
    sizes = _log_sizes(logs)
    started = time.monotonic()
    try:
        try:
            pid = daemonkit.spawn(argv, pidfile=pidfile, on_wait=progress, **spawn_options)
        finally:
            progress.clear()  # before any message
    except daemonkit.AlreadyRunning as exc:
        return fail(f"{name}: {_already_running(exc, pidfile, name)}", 1), 0, 0.0
    except daemonkit.StartupError as exc:
        error(f"{name}: {exc}")
        for line in _log_tail(sizes):
            try:
                sys.stderr.write(line + "\n")
            except OSError:
                break
        return exc.exit_status, 0, 0.0
    elapsed_ms = (time.monotonic() - started) * 1000
    record["pid"] = pid
    try:
        records.check_location(pidfile)
    except daemonkit.DaemonError as exc:
        error(f"{name}: {exc}; '{PROG} restart' will not know how it was started")
        return 0, pid, elapsed_ms
    try:
        records.write(pidfile, record)
    except (OSError, daemonkit.DaemonError) as exc:
        daemonkit.stop(pidfile, supervised.stop_timeout(pidfile, record["controls"]["stop_timeout"]))
        return fail(f"{name}: started, but could not record it ({exc}); stopped it", 1), 0, 0.0
    return 0, pid, elapsed_ms


def _already_running(exc: daemonkit.AlreadyRunning, pidfile: str, name: str) -> str:
    """What holds the pidfile: the daemon, or what a dead one left running."""
    if exc.pid is not None:
        return f"already running (pid {exc.pid}); see '{PROG} status {name}'"
    state = daemonkit.status(pidfile)
    if state.state == "dead":
        return f"not started: {state.reason}; '{PROG} stop {name}' stops them"
    return f"already running (pid unknown); see '{PROG} status {name}'"


def cmd_run(args: Args) -> int:
    command = _command_of(args)
    pidfile = os.path.abspath(args.pidfile) if args.pidfile else None
    if args.name and not pidfile:
        pidfile = os.path.join(rundir(), check_name(args.name) + ".pid")
        ensure_rundir(pidfile)
    try:
        return daemonkit.run(command, pidfile=pidfile, **_spawn_options(args, default_log=None))
    except daemonkit.AlreadyRunning as exc:
        assert pidfile is not None
        name = args.name or command[0]
        return fail(f"{name}: {_already_running(exc, pidfile, name)}", 1)
    except daemonkit.StartupError as exc:
        return fail(str(exc), exc.exit_status)


def cmd_restart(args: Args) -> int:
    name, pidfile = pidfile_of(args)
    under_supervisor = supervised.restart(name, pidfile)  # the app restarts, the supervisor stays
    if under_supervisor is not None:
        return under_supervisor
    record = records.read(pidfile)
    if record is None:
        return fail(
            f"{name}: no record of how it was started ({records.path_for(pidfile)}); use '{PROG} start'", 1
        )
    controls = record["controls"]
    timeout = supervised.stop_timeout(pidfile, args.timeout or controls["stop_timeout"])
    before = daemonkit.status(pidfile)
    try:
        daemonkit.stop(pidfile, timeout, signal=records.signal_of(controls["stop_signal"]), state=before)
    except daemonkit.StopError as exc:
        return fail(f"{name}: could not stop it: {exc}", 1)
    if before.running:
        say(f"stopped {name} (pid {before.pid})")
    return start_recorded(name, pidfile, record)


def _unit_directory() -> tuple[str, str, str]:
    """(directory, WantedBy target, systemctl prefix) for --install."""
    if os.geteuid() == 0:
        return "/etc/systemd/system", "multi-user.target", "systemctl"
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return os.path.join(config, "systemd", "user"), "default.target", "systemctl --user"


def cmd_unit(args: Args) -> int:
    from daemonkit.systemd import service_unit

    command = _command_of(args)
    name = check_name(args.name)
    environ = dict(item.partition("=")[::2] for item in args.env)
    streams = _streams(args, default_log=None)
    controls = records.controls_of(args)
    directory, wanted_by, systemctl = _unit_directory()
    text = service_unit(
        name,
        command,
        notify=args.wait_ready == "notify",
        user=args.user,
        group=args.group,
        working_directory=os.path.abspath(args.chdir),
        umask=args.umask,
        env=environ,
        stdout=streams["stdout"],
        stderr=streams["stderr"],
        wanted_by=wanted_by,
        stop_signal=controls["stop_signal"],
        stop_timeout=controls["stop_timeout"],
        reload_signal=controls["reload_signal"],
        **supervised.unit_restart(args),
    )
    if args.wait_ready not in ("exec", "notify"):
        error(f"note: --wait-ready {args.wait_ready} has no systemd equivalent; the unit uses Type=exec")
    if not args.install:
        sys.stdout.write(text)
        return 0
    path = os.path.join(directory, f"{name}.service")
    if os.path.lexists(path):
        return fail(f"{path} exists; remove it first, or print the unit without --install", 1)
    os.makedirs(directory, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    error(f"installed {path}; next: {systemctl} daemon-reload && {systemctl} enable --now {name}")
    return 0
