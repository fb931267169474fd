"""What ``status`` and ``list`` show of a supervised daemon (or of an
exec-mode one, in the same fields): the supervisor's state record, and the
CPU and memory of the app's process tree from /proc."""

from __future__ import annotations

import os
import time

from daemonkit import supervisor

from .common import PROG

TYPE_CHECKING = False  # see daemonkit/__init__.py
if TYPE_CHECKING:
    from typing import Any


def state_of(pidfile: str, holder: int | None) -> dict[str, Any] | None:
    """The supervisor's record, if it belongs to the current holder (or,
    with no holder, to the last supervisor)."""
    state = supervisor.read_state(pidfile)
    if state is None or (holder is not None and state.get("pid") != holder):
        return None
    return state


def describe(info: dict[str, Any], pidfile: str) -> None:
    """Add the supervisor's view (or exec mode's) to status/list's dict."""
    running = info["state"] == "running"
    state = state_of(pidfile, info["pid"] if running else None)
    info["supervised"] = state is not None
    if state is None:
        info.update(main_pid=info["pid"], restarts=0, last_exit=None, status_text=None, log_disk_full=False)
        info["log"] = info.pop("exec_log", None)
        info["tree"] = [info["pid"]] if running else []
        return
    info.pop("exec_log", None)
    if not running and state.get("state") not in ("fatal",):
        state = {**state, "main_pid": None, "started_at": None}
    # fatal while its pidfile is left (LSB 1); once `stop` removed it, stopped.
    if running or (state.get("state") == "fatal" and info["state"] == "stale"):
        info["state"] = state.get("state", info["state"])
    info["main_pid"] = state.get("main_pid")
    info["restarts"] = state.get("restarts", 0)
    info["last_exit"] = state.get("last_exit")
    info["status_text"] = state.get("status_text") or None
    info["log"] = state.get("log")
    info["log_disk_full"] = bool(state.get("log_disk_full"))
    started = state.get("started_at")
    info["uptime"] = (
        max(0.0, time.time() - started) if running and isinstance(started, (int, float)) else None
    )
    info["others"] = _outside_the_group(info["pid"], info["main_pid"]) if running else []
    info["tree"] = [p for p in [info["main_pid"], *info["others"]] if p]  # the app's, and the adopted
    info["stop_timeout"] = state.get("stop_timeout")
    if info["state"] == "fatal":
        info["lsb"] = 1


def exit_text(last: dict[str, Any] | None) -> str | None:
    if not last:
        return None
    what = f"exited {last['code']}" if "code" in last else f"killed by {last.get('signal')}"
    if last.get("watchdog"):
        what += " (watchdog timeout)"
    at = last.get("at")
    if isinstance(at, (int, float)):
        what += time.strftime(" at %Y-%m-%d %H:%M:%S", time.localtime(at))
    return what


def tree_usage(roots: list[int]) -> tuple[float | None, int | None]:
    """CPU seconds and RSS bytes of ``roots`` and their descendants."""
    if not roots:
        return None, None
    from daemonkit import _posix

    ticks = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    cpu, rss, todo, seen = 0.0, 0, list(roots), set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        fields = _posix.proc_stat(current)
        if fields is None:
            continue
        cpu += (int(fields[11]) + int(fields[12])) / ticks
        rss += int(fields[21]) * page
        todo += _posix.children_of(current)
    return cpu, rss


def print_status(info: dict[str, Any]) -> None:
    from .manage import _uptime

    name, state = info["name"], info["state"]
    head = f"{name}: {state} (supervisor pid {info['pid'] or '-'}, app pid {info['main_pid'] or '-'})"
    if info["uptime"] is not None:
        head += f", up {_uptime(info['uptime'])}"
    head += f", {info['restarts']} restart{'s' if info['restarts'] != 1 else ''}"
    print(head)
    if state == "fatal":
        print(f"  fatal    too many short runs in a row; '{PROG} start {name}' starts it again")
    last = exit_text(info["last_exit"])
    if last:
        print(f"  last     {last}")
    if info["status_text"]:
        print(f"  status   {info['status_text']}")
    if info["log"]:
        print(f"  log      {info['log']}")
    if info["log_disk_full"]:
        print("  log: disk full (the app blocks on its next write until space returns)")
    if info.get("others"):
        listed = " ".join(map(str, info["others"]))
        print(f"  others   {listed} (left the app's process group; stopped with it)")


def _outside_the_group(supervisor_pid: int, app: int | None) -> list[int]:
    """Descendants of the supervisor outside the app's process group: the
    ones that called setsid(), adopted by the subreaper."""
    from daemonkit.supervisor_tree import descendants

    others = []
    for pid in descendants(supervisor_pid):
        try:
            if pid != app and os.getpgid(pid) != app:
                others.append(pid)
        except OSError:
            continue
    return others
