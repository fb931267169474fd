"""``start --restart``, ``rotate``, and what stop/status/reload/restart/list
do for a daemon run by a supervisor (daemonkit/supervisor.py)."""

from __future__ import annotations

import os
import time

import daemonkit
from daemonkit import supervisor

from .common import PROG, UsageError, fail, pidfile_of, say

TYPE_CHECKING = False  # see daemonkit/__init__.py
if TYPE_CHECKING:
    from argparse import Namespace as Args
    from typing import Any, Callable

# The supervisor's settings, as start's options name them; the stop and
# reload controls are the record's, as for any daemon (records.controls_of).
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
)
_GRACE = 5.0  # what the CLI waits beyond the supervisor's own timeouts


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


def settings_of(args: Args, pidfile: str) -> dict[str, Any]:
    """The supervisor's settings from start's options, with the log's
    absolute path: what the record keeps."""
    if args.stdout or args.stderr:
        raise UsageError("--restart captures stdout and stderr together: use --log FILE")
    log = os.path.abspath(args.log) if args.log else pidfile.removesuffix(".pid") + ".log"
    return {"log": log, **{key: getattr(args, key) for key in _SETTINGS}}


def start(
    name: str,
    pidfile: str,
    command: list[str],
    options: dict[str, Any],
    controls: dict[str, Any],
    settings: dict[str, Any],
    wait_ready: str,
    timeout: float,
) -> int:
    """``start --restart``: the daemonized process becomes the supervisor."""
    from . import records
    from .launch import launch_and_record

    hint = refuse_under_manager()
    if hint is not None:
        return fail(f"{name}: {hint}", 2)
    env = options.get("env")
    try:
        config = supervisor.build(
            command,
            pidfile=pidfile,
            user=options["user"],
            group=options["group"],
            path=(env if env is not None else os.environ).get("PATH"),
            name=name,
            wait_ready=wait_ready,
            stop_signal=records.signal_of(controls["stop_signal"]),
            stop_timeout=controls["stop_timeout"],
            reload_signal=records.signal_of(controls["reload_signal"]),
            **settings,
        )
    except daemonkit.StartupError as exc:  # not found (127), not executable (126)
        return fail(f"{name}: {exc}", exc.exit_status)
    # The log is checked now, as the supervisor will open it, so that a
    # planted or unusable one is an error here, before anything starts.
    from daemonkit.logfile import LogWriter

    LogWriter(settings["log"], service_uid=config.uid if config.uid >= 0 else None).close()
    record = records.make(name, 0, command, options, controls, wait_ready, timeout)
    record["supervise"] = settings
    record["log"] = settings["log"]
    spawn_options = {
        "wait_ready": "fd",  # the supervisor says READY once the app is ready
        "timeout": timeout,
        "working_directory": options["working_directory"],
        "umask": options["umask"],
        "env": env,
    }
    status, pid, elapsed_ms = launch_and_record(
        name, pidfile, supervisor.command(config), spawn_options, [settings["log"]], record
    )
    if status == 0:
        state = supervisor.read_state(pidfile) or {}
        who = f"supervisor pid {pid}, app pid {state.get('main_pid') or '?'}, restart {config.restart}"
        say(f"started {name} ({who}), ready in {elapsed_ms:.0f} ms")
    return status


def start_from_record(name: str, pidfile: str) -> int | None:
    """``start NAME`` for a NAME with a record: start it as recorded (this
    revives a fatal daemon). None when NAME has no record."""
    from . import records
    from .launch import start_recorded

    record = records.read(pidfile)
    if record is None:
        return None
    return start_recorded(name, pidfile, record)


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


def running_state(pidfile: str) -> dict[str, Any] | None:
    from .supervised_view import state_of

    status = daemonkit.status(pidfile)
    return state_of(pidfile, status.pid) if status.running else None


def reload(name: str, pidfile: str) -> int | None:
    """reload through the supervisor, with its reply; None if not supervised."""
    before = running_state(pidfile)
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
    before = running_state(pidfile)
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
    before = running_state(pidfile)
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


def unit_restart(args: Args) -> dict[str, Any]:
    """service_unit()'s restart settings for ``unit --restart``: systemd's
    own Restart=/RestartSec=, no daemonkit supervisor."""
    if not wanted(args):
        return {}
    return {"restart": args.restart, "restart_sec": args.restart_sec}
