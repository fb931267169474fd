"""``stop``, ``status``, ``reload``, ``list`` and ``forget``: the commands
that look at or act on a daemon."""

from __future__ import annotations

import os
import shlex
import sys
import time

import daemonkit

from . import records, supervised
from .common import PROG, UsageError, fail, hint_target, pidfile_of, rundir, say

TYPE_CHECKING = False  # see daemonkit/__init__.py
if TYPE_CHECKING:
    from argparse import Namespace as Args
    from typing import Any


def signal_number(text: str) -> int:
    return records.signal_of(records.signal_name(text))


def _controls(pidfile: str) -> dict[str, Any]:
    record = records.read_for_display(pidfile)
    controls = record.get("controls")
    return controls if isinstance(controls, dict) else {}


def cmd_stop(args: Args) -> int:
    name, pidfile = pidfile_of(args)
    controls = _controls(pidfile)
    sig = args.signal or records.signal_of(controls.get("stop_signal", "TERM"))
    if supervised.running_state(pidfile) is not None:
        sig = records.signal_of("TERM")  # the supervisor stops its app with the app's own signal
    timeout = args.timeout or controls.get("stop_timeout", records.DEFAULT_STOP_TIMEOUT)
    started = time.monotonic()
    sig_name = records.signal_name(str(sig))

    def on_kill(pid: int) -> None:
        print(
            f"{name}: still running {timeout:g} s after SIG{sig_name}; sending SIGKILL",
            file=sys.stderr,
        )

    timeout = supervised.stop_timeout(pidfile, timeout)  # a supervisor gets its own stop timeout and more
    try:
        state = daemonkit.stop(pidfile, timeout, signal=sig, on_kill=on_kill, unlocked=args.unlocked)
    except daemonkit.UnlockedPidFile as exc:
        target = hint_target(name, pidfile, args)
        return fail(f"{name}: {exc}; stop it with '{PROG} stop --unlocked {target}'", 1)
    except daemonkit.StopError as exc:
        return fail(f"{name}: could not stop it: {exc}", 1)
    except daemonkit.DaemonError as exc:
        return fail(f"{name}: {exc}", 1)
    if state.state in ("stale", "stopped"):
        suffix = " (stale pidfile); removed it" if state.state == "stale" else ""
        say(f"{name}: not running{suffix}")
        return 0
    what = f"pid {state.pid}" if state.running else "what it left running"
    say(f"stopped {name} ({what}) in {(time.monotonic() - started) * 1000:.0f} ms")
    return 0


def _describe(name: str, pidfile: str) -> dict[str, Any]:
    from .supervised_view import describe

    state = daemonkit.status(pidfile)
    record = records.read_for_display(pidfile)
    spawned = record.get("spawn")
    spawned = spawned if isinstance(spawned, dict) else {}
    uptime = max(0.0, time.time() - state.started) if state.running and state.started else None
    info = {
        "name": name,
        **state.as_dict(),  # pidfile, state, pid, started, reason, locked, holders
        "holders": list(state.holders),
        "uptime": round(uptime, 3) if uptime is not None else None,
        "command": record.get("command"),
        "lsb": state.lsb_code,
        "exec_log": spawned.get("stdout") or spawned.get("stderr"),
    }
    describe(info, pidfile)  # supervised, main_pid, restarts, last_exit, log, status_text
    return info


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")]
    shown = [f"{value}{unit}" for value, unit in parts if value][:2]
    return " ".join(shown) or "0s"


def _command_text(command: Any) -> str:
    return (
        shlex.join(command) if isinstance(command, list) and all(isinstance(w, str) for w in command) else ""
    )


def cmd_status(args: Args) -> int:
    name, pidfile = pidfile_of(args)
    info = _describe(name, pidfile)
    info.pop("tree", None)
    if args.json:
        import json

        say(json.dumps(info))
        return int(info["lsb"])
    state = info["state"]
    target = hint_target(name, pidfile, args)
    if info["supervised"]:
        from .supervised_view import print_status

        print_status(info)
    elif state == "running":
        unlocked = "" if info["locked"] else "; its pidfile holds no lock (not written by daemonkit)"
        say(f"{name}: running (pid {info['pid']}), up {_uptime(info['uptime'])}{unlocked}")
    elif state == "dead":
        say(f"{name}: dead: {info['reason']}; '{PROG} stop {target}' stops them")
    elif state == "stale":
        say(f"{name}: not running, but its pidfile is left behind (stale); '{PROG} stop {target}' removes it")
    elif state == "stopped":
        say(f"{name}: not running")
    else:
        say(f"{name}: unknown: {info['reason']}")
    if info["command"]:
        say(f"  command  {_command_text(info['command'])}")
    say(f"  pidfile  {pidfile}")
    return int(info["lsb"])


def cmd_reload(args: Args) -> int:
    name, pidfile = pidfile_of(args)
    if (args.signal or args.force) and supervised.running_state(pidfile) is not None:
        raise UsageError(
            f"{name} runs under a supervisor, which sends its app the recorded reload signal "
            "and only if the app handles it: drop --signal/--force, or restart it with --reload-signal"
        )
    through_supervisor = supervised.reload(name, pidfile)
    if through_supervisor is not None:
        return through_supervisor
    controls = _controls(pidfile)
    sig = args.signal or records.signal_of(controls.get("reload_signal", "HUP"))
    try:
        state = daemonkit.reload(pidfile, signal=sig, force=args.force)
    except daemonkit.DaemonError as exc:
        return fail(f"{name}: {exc}", 1)
    if not state.running:
        return fail(f"{name}: not running", 3)
    say(f"{name}: sent SIG{records.signal_name(str(sig))} to pid {state.pid}")
    return 0


def cmd_forget(args: Args) -> int:
    name, pidfile = pidfile_of(args)
    # Files are removed by name: only in a directory nobody else controls,
    # where a planted symlink on the way cannot send the unlink elsewhere.
    try:
        records.check_location(pidfile)
    except daemonkit.DaemonError as exc:
        return fail(f"{name}: {exc}; remove its files by hand", 1)
    state = daemonkit.status(pidfile)
    if state.state in ("running", "dead"):
        return fail(
            f"{name}: is {state.state}; stop it first: '{PROG} stop {hint_target(name, pidfile, args)}'", 1
        )
    path = records.path_for(pidfile)
    removed = False
    supervised.forget(pidfile)
    for leftover in (path, pidfile if state.state == "stale" else None):
        if leftover is not None:
            try:
                os.unlink(leftover)
                removed = True
            except FileNotFoundError:
                pass
    if not removed:
        return fail(f"{name}: nothing to forget (no {path})", 1)
    say(f"forgot {name}")
    return 0


def cmd_list(args: Args) -> int:
    directory = rundir()
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        entries = []
    from .supervised_view import tree_usage

    names = sorted({e.rsplit(".", 1)[0] for e in entries if e.endswith((".pid", ".json"))})
    rows = [_describe(n, os.path.join(directory, n + ".pid")) for n in names]
    for row in rows:
        row["cpu"], row["mem"] = tree_usage(row.pop("tree", []))
    if args.json:
        import json

        say(json.dumps(rows))
        return 0
    if not rows:
        say(f"no daemons in {directory}")
        return 0
    table = [("NAME", "PID", "STATE", "RESTARTS", "UPTIME", "CPU", "MEM", "COMMAND")] + [
        (
            r["name"],
            str(r["pid"] or "-"),
            r["state"],
            str(r["restarts"]),
            _uptime(r["uptime"]),
            "-" if r["cpu"] is None else f"{r['cpu']:.1f}s",
            "-" if r["mem"] is None else f"{r['mem'] / (1 << 20):.1f}M",
            _command_text(r["command"]),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(7)]
    for row in table:
        say("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[7])
    return 0
