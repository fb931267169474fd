"""``start --restart``, ``rotate``, and what stop/status/reload/restart/list
do for a daemon run by a supervisor (daemonkit/supervisor.py)."""

from __future__ import annotations

import os
import sys
import time

import daemonkit
from daemonkit import supervisor

from .common import PROG, UsageError, fail, pidfile_of

TYPE_CHECKING = False  # see daemonkit/__init__.py
if TYPE_CHECKING:
    from typing import Any, Callable

    from .parse import Args

_SETTINGS = (
    "restart",
    "restart_sec",
    "restart_max_delay",
    "min_uptime",
    "start_limit_burst",
    "log_max_size",
    "log_keep",
    "log_timestamps",
    "watchdog_sec",
    "stop_signal",
    "stop_timeout",
    "reload_signal",
)
_GRACE = 5.0  # what the CLI waits beyond the supervisor's own timeouts


def duration(text: str) -> float:
    try:
        return supervisor.parse_duration(text)
    except ValueError:
        raise UsageError(f"invalid duration {text!r}: use 100ms, 1s, 2m or seconds") from None


def size(text: str) -> int:
    try:
        return supervisor.parse_size(text)
    except ValueError:
        raise UsageError(f"invalid size {text!r}: use 10M, 512K or bytes") from None


def policy(text: str) -> str:
    if text not in supervisor.POLICIES:
        raise UsageError(f"invalid --restart {text!r}: use no, on-failure or always")
    return text


def timestamps(text: str) -> str:
    if text not in ("none", "iso"):
        raise UsageError(f"invalid --log-timestamps {text!r}: use none or iso")
    return text


def wanted(args: Args) -> bool:
    return getattr(args, "restart", "no") not in (None, "no")


def refuse_under_manager() -> str | None:
    """Never two supervisors: systemd or a container runtime restarts."""
    from daemonkit.systemd import supervised

    if not supervised():
        return None
    if "INVOCATION_ID" in os.environ or "NOTIFY_SOCKET" in os.environ:
        return "--restart under systemd: use the unit's Restart= and RestartSec= (see 'daemonkit unit')"
    if os.getpid() == 1:
        return "--restart as PID 1 (a container): use the orchestrator's restart policy"
    # Started by init (an rc script) or from inetd: nothing else restarts it.
    return None


def start(args: Args, command: list[str], name: str, pidfile: str, options: dict[str, Any]) -> int:
    """``start --restart``: the daemonized process becomes the supervisor."""
    from .launch import _already_running, _Progress

    hint = refuse_under_manager()
    if hint is not None:
        return fail(f"{name}: {hint}", 2)
    log = os.path.abspath(args.log) if args.log else pidfile.removesuffix(".pid") + ".log"
    if args.stdout or args.stderr:
        return fail(f"{name}: --restart captures stdout and stderr together: use --log FILE", 2)
    env = options.get("env")
    try:
        config = supervisor.build(
            command,
            pidfile=pidfile,
            log=log,
            user=options["user"],
            group=options["group"],
            path=(env if env is not None else os.environ).get("PATH"),
            name=name,
            wait_ready=args.wait_ready,
            **{key: getattr(args, key) for key in _SETTINGS},
        )
    except daemonkit.StartupError as exc:  # not found (127), not executable (126)
        return fail(f"{name}: {exc}", exc.exit_status)
    progress = _Progress()
    started = time.monotonic()
    try:
        try:
            pid = daemonkit.spawn(
                supervisor.command(config),
                pidfile=pidfile,
                wait_ready="fd",
                timeout=args.timeout,
                on_wait=progress,
                working_directory=options["working_directory"],
                umask=options["umask"],
                env=env,
            )
        finally:
            progress.clear()
    except daemonkit.AlreadyRunning as exc:
        return fail(f"{name}: {_already_running(exc, pidfile, name)}", 1)
    except daemonkit.StartupError as exc:
        from .launch import _log_tail

        print(f"{PROG}: {name}: {exc}", file=sys.stderr)
        for line in _log_tail([log]):
            sys.stderr.write(line + "\n")
        return exc.exit_status
    elapsed_ms = (time.monotonic() - started) * 1000
    from daemonkit import record

    options_seen = {key: value for key, value in vars(args).items() if key != "func"}
    record.write(
        pidfile,
        {
            "name": name,
            "pid": pid,
            "command": command,
            "started": time.time(),
            "supervised": True,
            "options": {**options_seen, "command": command, "pidfile": pidfile},
        },
    )
    state = supervisor.read_state(pidfile) or {}
    app = state.get("main_pid") or "?"
    who = f"supervisor pid {pid}, app pid {app}, restart {config.restart}"
    print(f"started {name} ({who}), ready in {elapsed_ms:.0f} ms")
    return 0


def start_from_record(name: str, pidfile: str) -> int | None:
    """``start NAME`` for a NAME with a record: start it as recorded (this
    revives a fatal daemon). None when NAME has no record."""
    from daemonkit import record

    recorded = record.read(pidfile)
    if not recorded or not isinstance(recorded.get("options"), dict):
        return None
    from .launch import cmd_start
    from .parse import Args

    return cmd_start(Args(**recorded["options"]))


def forget(pidfile: str) -> None:
    """A daemon started without --restart has no supervisor state."""
    path = supervisor.state_path(pidfile)
    if os.path.lexists(path):
        os.unlink(path)


def stop_timeout(pidfile: str, timeout: float) -> float:
    """stop's wait must outlast the supervisor's own stop timeout."""
    state = supervisor.read_state(pidfile)
    if state is None:
        return timeout
    return max(timeout, float(state.get("stop_timeout") or 0) + _GRACE)


def _wait_record(
    pidfile: str, done: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    delay = 0.002
    while time.monotonic() < deadline:
        state = supervisor.read_state(pidfile)
        if state is not None and done(state):
            return state
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return None


def _running_state(pidfile: str) -> dict[str, Any] | None:
    from .supervised_view import state_of

    status = daemonkit.status(pidfile)
    return state_of(pidfile, status.pid) if status.running else None


def reload(name: str, pidfile: str) -> int | None:
    """reload through the supervisor, with its reply; None if not supervised."""
    before = _running_state(pidfile)
    if before is None:
        return None
    count = before.get("reloads", 0)
    if not supervisor.signal_supervisor(pidfile, 1):  # SIGHUP
        return fail(f"{name}: not running", 3)
    timeout = float(before.get("stop_timeout") or 10) + _GRACE
    after = _wait_record(pidfile, lambda s: s.get("reloads", 0) > count, timeout)
    reply = (after or {}).get("last_reload") or {}
    result = reply.get("result", "no reply from the supervisor")
    if not result.startswith(("sent", "reloaded")):
        return fail(f"{name}: reload {result}", 1)
    took = reply.get("seconds")
    how = f" in {took * 1000:.0f} ms" if isinstance(took, (int, float)) else ""
    print(f"{name}: {result} ({reply.get('signal', 'SIGHUP')}){how}")
    return 0


def restart(name: str, pidfile: str) -> int | None:
    """restart the app under the same supervisor; None if not supervised."""
    before = _running_state(pidfile)
    if before is None or before.get("state") == "stopping":
        return None
    old_app, count = before.get("main_pid"), before.get("restarts", 0)
    if not supervisor.signal_supervisor(pidfile, supervisor.RESTART_SIGNAL):
        return None
    timeout = float(before.get("stop_timeout") or 10) + _GRACE + 30

    def restarted(state: dict[str, Any]) -> bool:
        moved = state.get("restarts", 0) > count and state.get("main_pid") not in (None, old_app)
        return moved and state.get("state") in ("running", "fatal", "stopped")

    after = _wait_record(pidfile, restarted, timeout)
    if after is None or after.get("state") != "running":
        return fail(f"{name}: restarted, but the app is not running; see '{PROG} status {name}'", 1)
    print(f"restarted {name} (app pid {after.get('main_pid')}, supervisor pid {after.get('pid')})")
    return 0


def cmd_rotate(args: Args) -> int:
    name, pidfile = pidfile_of(args)
    before = _running_state(pidfile)
    if before is None:
        if daemonkit.status(pidfile).running:
            return fail(
                f"{name}: started without --restart, so its output goes straight to its log file; "
                "rotate it with logrotate's copytruncate, or start it with --restart",
                1,
            )
        return fail(f"{name}: not running", 3)
    count = before.get("rotations", 0)
    if not supervisor.signal_supervisor(pidfile, supervisor.ROTATE_SIGNAL):
        return fail(f"{name}: not running", 3)
    if _wait_record(pidfile, lambda s: s.get("rotations", 0) > count, _GRACE) is None:
        return fail(f"{name}: the supervisor did not confirm the rotation", 1)
    print(f"{name}: rotated {before.get('log')}")
    return 0


def unit_lines(args: Args) -> str:
    """systemd's own restart settings for ``unit --restart``."""
    if not wanted(args):
        return ""
    lines = f"Restart={args.restart}\nRestartSec={args.restart_sec:g}s\n"
    if getattr(args, "watchdog_sec", 0):
        lines += f"WatchdogSec={args.watchdog_sec:g}s\n"
    return lines
