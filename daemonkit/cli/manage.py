"""``stop``, ``status``, ``reload`` and ``list``: the commands that look
at or act on a running daemon."""

from __future__ import annotations

import os
import sys
import time

import daemonkit

from .common import PROG, UsageError, fail, pidfile_of, rundir

TYPE_CHECKING = False  # see daemonkit/__init__.py
if TYPE_CHECKING:
    from typing import Any

    from .parse import Args


def signal_number(text: str) -> int:
    import signal

    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    if name.removeprefix("SIG").isdigit():
        return int(name.removeprefix("SIG"))
    if not hasattr(signal, name) or name.startswith("SIG_"):
        raise UsageError(f"unknown signal {text!r}")
    return int(getattr(signal, name))


def cmd_stop(args: Args) -> int:
    name, pidfile = pidfile_of(args)
    state = daemonkit.status(pidfile)
    if state.state == "unknown":
        return fail(f"{name}: {state.reason}", 1)
    if state.state in ("stale", "stopped"):
        suffix = " (stale pidfile); removed it" if state.stale_pidfile else ""
        daemonkit.stop(pidfile)
        print(f"{name}: not running{suffix}")
        return 0
    started = time.monotonic()

    def on_kill(pid: int) -> None:
        import signal

        sig = signal.Signals(args.signal).name
        print(f"{name}: still running {args.timeout:g} s after {sig}; sending SIGKILL", file=sys.stderr)

    from .supervised import stop_timeout

    timeout = stop_timeout(pidfile, args.timeout)  # a supervisor gets its own stop timeout and more
    try:
        daemonkit.stop(pidfile, timeout, signal=args.signal, on_kill=on_kill, unlocked=args.unlocked)
    except daemonkit.UnlockedPidFile as exc:
        return fail(f"{name}: {exc}; stop it with '{PROG} stop --unlocked {name}'", 1)
    except daemonkit.StopError as exc:
        return fail(f"{name}: could not stop it: {exc}", 1)
    what = f"pid {state.pid}" if state.running else "what it left running"
    print(f"stopped {name} ({what}) in {(time.monotonic() - started) * 1000:.0f} ms")
    return 0


def _uptime(uptime: float | None) -> str:
    if uptime is None:
        return "-"
    seconds = int(max(0, uptime))
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")]
    shown = [f"{value}{unit}" for value, unit in parts if value][:2]
    return " ".join(shown) or "0s"


def _describe(name: str, pidfile: str) -> dict[str, Any]:
    from daemonkit import record  # json: loaded only where records are used

    from .supervised_view import describe

    state = daemonkit.status(pidfile)
    recorded = record.read(pidfile) or {}
    options = recorded.get("options") or {}
    info = {
        "name": name,
        **state.as_dict(),  # state, pid, started, reason, locked, pidfile
        "uptime": max(0.0, time.time() - state.started) if state.running and state.started else None,
        "command": recorded.get("command"),
        "lsb": state.lsb_code,
        "exec_log": options.get("log") or options.get("stdout"),
    }
    describe(info, pidfile)  # main_pid, restarts, last_exit, log, status_text
    return info


def cmd_status(args: Args) -> int:
    name, pidfile = pidfile_of(args)
    info = _describe(name, pidfile)
    info.pop("tree", None)
    if args.json:
        import json

        print(json.dumps(info))
        return int(info["lsb"])
    state = info["state"]
    if info["supervised"]:
        from .supervised_view import print_status

        print_status(info)
    elif state == "running":
        unlocked = "" if info["locked"] else "; its pidfile holds no lock (not written by daemonkit)"
        print(f"{name}: running (pid {info['pid']}), up {_uptime(info['uptime'])}{unlocked}")
    elif state == "dead":
        print(f"{name}: dead: {info['reason']}; '{PROG} stop {name}' stops them")
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


def cmd_reload(args: Args) -> int:
    from .supervised import reload

    name, pidfile = pidfile_of(args)
    through_supervisor = reload(name, pidfile)
    if through_supervisor is not None:
        return through_supervisor
    if not daemonkit.reload(pidfile):
        return fail(f"{name}: not running", 3)
    print(f"{name}: sent SIGHUP")
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

        print(json.dumps(rows))
        return 0
    if not rows:
        print(f"no daemons in {directory}")
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
            " ".join(r["command"] or []),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(7)]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[7])
    return 0
