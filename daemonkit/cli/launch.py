"""``start``, ``run``, ``restart`` and ``unit``: the commands that launch
(or describe how to launch) a program."""

from __future__ import annotations

import os
import sys
import time

import daemonkit

from .common import PROG, UsageError, check_name, ensure_rundir, error, fail, pidfile_of, rundir
from .parse import Args

TYPE_CHECKING = False  # see daemonkit/__init__.py
if TYPE_CHECKING:
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
        raise UsageError("no command given: daemonkit start [options] -- COMMAND [ARGS...]")
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


def _context_options(args: Args, default_log: str | None) -> dict[str, Any]:
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


def cmd_start(args: Args) -> int:
    command = _command_of(args)
    args.name = check_name(args.name or os.path.basename(command[0]))
    name, pidfile = pidfile_of(args)
    ensure_rundir(pidfile)
    from . import supervised

    if supervised.wanted(args):
        return supervised.start(args, command, name, pidfile, _context_options(args, default_log=None))
    supervised.forget(pidfile)
    options = _context_options(args, default_log=pidfile.removesuffix(".pid") + ".log")
    progress = _Progress()
    started = time.monotonic()
    try:
        try:
            pid = daemonkit.spawn(
                command,
                pidfile=pidfile,
                wait_ready=args.wait_ready,
                timeout=args.timeout,
                on_wait=progress,
                **options,
            )
        finally:
            progress.clear()  # before any message
    except daemonkit.AlreadyRunning as exc:
        return fail(f"{name}: {_already_running(exc, pidfile, name)}", 1)
    except daemonkit.StartupError as exc:
        error(f"{name}: {exc}")
        for line in _log_tail([options["stderr"], options["stdout"]]):
            sys.stderr.write(line + "\n")
        return exc.exit_status
    elapsed_ms = (time.monotonic() - started) * 1000
    # json brings re and enum: ~5 ms of CPU, loaded only now, not while the
    # command starts (it would compete with it for the CPU) or before the exec.
    from daemonkit import record

    # The options as parsed (less the handler function), so that restart can
    # rebuild the same Args.
    options_seen = {key: value for key, value in vars(args).items() if key != "func"}
    record.write(
        pidfile,
        {
            "name": name,
            "pid": pid,
            "command": command,
            "started": time.time(),
            "options": {**options_seen, "command": command, "pidfile": pidfile},
        },
    )
    print(f"started {name} (pid {pid}), ready in {elapsed_ms:.0f} ms")
    return 0


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
        return daemonkit.run(command, pidfile=pidfile, **_context_options(args, default_log=None))
    except daemonkit.AlreadyRunning as exc:
        assert pidfile is not None
        name = args.name or command[0]
        return fail(f"{name}: {_already_running(exc, pidfile, name)}", 1)
    except daemonkit.StartupError as exc:
        return fail(str(exc), exc.exit_status)


def cmd_restart(args: Args) -> int:
    from daemonkit import record  # json: loaded only where records are used

    name, pidfile = pidfile_of(args)
    from .supervised import restart, stop_timeout

    under_supervisor = restart(name, pidfile)  # the app restarts, the supervisor stays
    if under_supervisor is not None:
        return under_supervisor
    recorded = record.read(pidfile)
    if not recorded or not isinstance(recorded.get("options"), dict):
        return fail(
            f"{name}: no record of how it was started ({record.path_for(pidfile)}); use '{PROG} start'", 1
        )
    try:
        daemonkit.stop(pidfile, stop_timeout(pidfile, args.timeout))
    except daemonkit.StopError as exc:
        return fail(f"{name}: could not stop it: {exc}", 1)
    start_args = Args(**recorded["options"])
    return cmd_start(start_args)


def _unit_directory() -> tuple[str, str, str]:
    """(directory, WantedBy target, systemctl prefix) for --install."""
    if os.geteuid() == 0:
        return "/etc/systemd/system", "multi-user.target", "systemctl"
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return os.path.join(config, "systemd", "user"), "default.target", "systemctl --user"


def cmd_unit(args: Args) -> int:
    command = _command_of(args)
    name = check_name(args.name)
    environ = dict(item.partition("=")[::2] for item in args.env)
    streams = _streams(args, default_log=None)
    directory, wanted_by, systemctl = _unit_directory()
    text = daemonkit.service_unit(
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
    )
    if args.wait_ready not in ("exec", "notify"):
        error(f"note: --wait-ready {args.wait_ready} has no systemd equivalent; the unit uses Type=exec")
    from .supervised import unit_lines

    restart = unit_lines(args)
    if restart:  # systemd's own Restart=/RestartSec= instead of the default Restart=on-failure
        text = text.replace("Restart=on-failure\n", restart, 1)
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
