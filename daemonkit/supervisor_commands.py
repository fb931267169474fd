"""What the supervisor does on a request or a message: ``reload`` (HUP) and
``rotate``, the app's sd_notify messages, and the state record it writes.

A request ends with a counter and a result in the record: that is the reply
``daemonkit reload`` / ``rotate`` wait for."""

from __future__ import annotations

import os
import time

from . import _posix
from .supervisor_tree import dev_ino, kill_quietly

TYPE_CHECKING = False  # see __init__.py
if TYPE_CHECKING:
    from typing import Any

    from .supervision import Supervisor

RELOAD_ACK = 1.0  # how long an app may take to say RELOADING=1


def reload(sup: Supervisor) -> None:
    """The reload signal to the app, only if the app catches it: its default
    action (for HUP: terminate) would turn a reload into a crash."""
    from .supervision import signal_name

    sig = sup.cfg.reload_signal
    if not sup.app or not sup.ready:
        end_reload(sup, f"refused: the app is {sup.state}", None)
    elif _posix.signal_disposition(sup.app, sig) in ("default", "ignored"):
        reason = f"refused: the app does not catch {signal_name(sig)} (it would die of it)"
        sup.writer.write(f"daemonkit: reload {reason}\n".encode())
        end_reload(sup, reason, None)
    else:
        kill_quietly(sup.app, sig)
        if sup.notify is None:
            end_reload(sup, "sent", None)
        else:  # wait for RELOADING=1 ... READY=1 (see Supervisor.on_notify)
            sup.reload_started = time.monotonic()
            sup.reload_deadline = sup.reload_started + RELOAD_ACK
            sup.reloading = False


def end_reload(sup: Supervisor, result: str, took: float | None) -> None:
    from .supervision import signal_name

    sup.reload_started, sup.reloading = None, False
    sup.reloads += 1
    sup.last_reload = {"result": result, "signal": signal_name(sup.cfg.reload_signal), "at": time.time()}
    if took is not None:
        sup.last_reload["seconds"] = round(took, 6)
    sup.save()


def rotate(sup: Supervisor) -> None:
    """Rotate now; or, if the file was moved away (logrotate's create
    mode), reopen the path."""
    fileno = getattr(sup.writer, "fileno", None)
    try:
        st = os.stat(sup.cfg.log, follow_symlinks=False)
        # Without the writer's fd, only a missing file shows it was moved.
        moved = fileno is not None and dev_ino(st) != dev_ino(os.fstat(fileno()))
    except FileNotFoundError:
        moved = True
    try:
        if moved:
            sup.writer.reopen()
        else:
            sup.writer.rotate()
    except OSError as exc:
        sup.writer.write(f"daemonkit: cannot rotate {sup.cfg.log}: {exc.strerror}\n".encode())
    sup.rotations += 1
    sup.save()


def on_notify(sup: Supervisor, lines: list[str]) -> bool:
    """Act on the app's sd_notify messages; True if the record changed."""
    changed = ready = False
    now = time.monotonic()
    for line in lines:
        key, _, value = line.partition("=")
        if key == "READY" and value == "1":
            ready = True  # acted on last: "READY=1\nSTATUS=..." is one message
        elif key == "RELOADING" and value == "1" and sup.reload_started is not None:
            sup.reloading = True
            sup.reload_deadline = now + max(sup.cfg.stop_timeout, 1.0)
        elif key == "STATUS":
            sup.status_text, changed = value, True
        elif key == "WATCHDOG" and value == "1" and sup.watchdog_at is not None:
            sup.watchdog_at = now + sup.cfg.watchdog_sec
        elif key == "WATCHDOG" and value == "trigger":
            sup.watchdog_at = now
        elif key == "WATCHDOG_USEC" and value.isdigit() and sup.app:
            sup.cfg.watchdog_sec = int(value) / 1e6
            sup.watchdog_at = now + sup.cfg.watchdog_sec
        elif key == "EXTEND_TIMEOUT_USEC" and value.isdigit() and sup.kill_at is not None:
            sup.kill_at = max(sup.kill_at, now + int(value) / 1e6)
        elif key == "STOPPING" and value == "1":
            changed = True
    if ready and sup.reloading and sup.reload_started is not None:
        end_reload(sup, "reloaded", now - sup.reload_started)  # saves the record
        changed = False
    elif ready and not sup.ready and sup.mode.kind == "notify":
        sup.on_ready()
        changed = False
    return changed


def record(sup: Supervisor) -> dict[str, Any]:
    """The state record (docs/supervise.md lists its fields)."""
    cfg = sup.cfg
    return {
        "name": cfg.name,
        "state": sup.state,
        "pid": sup.pid,
        "main_pid": sup.app or None,
        "restarts": sup.restarts,
        "last_exit": sup.last_exit,
        "started_at": sup.app_started if sup.app else None,
        "status_text": sup.status_text,
        "log": cfg.log,
        "log_disk_full": bool(sup.writer.disk_full),
        "restart": cfg.restart,
        "restart_sec": cfg.restart_sec,
        "restart_max_delay": cfg.restart_max_delay,
        "min_uptime": cfg.min_uptime,
        "start_limit_burst": cfg.start_limit_burst,
        "watchdog_sec": cfg.watchdog_sec,
        "stop_timeout": cfg.stop_timeout,
        "subreaper": sup.subreaper,
        "reloads": sup.reloads,
        "last_reload": sup.last_reload,
        "rotations": sup.rotations,
        "command": cfg.argv,
    }
