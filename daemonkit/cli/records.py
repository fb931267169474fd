"""What ``daemonkit start`` remembers about a daemon: a versioned record of
spawn()'s arguments (every path absolute) and the daemon's stop and reload
controls, so that ``restart`` starts it again the same way from any
directory, and ``status``/``list`` can show its command.

Stored beside the pidfile by :mod:`daemonkit.record`, which also decides
whether a record can be believed.
"""

from __future__ import annotations

import signal
import time

from daemonkit import record as storage
from daemonkit.errors import DaemonError

from .common import PROG, UsageError

TYPE_CHECKING = False  # see daemonkit/__init__.py
if TYPE_CHECKING:
    from argparse import Namespace as Args
    from typing import Any

VERSION = 1
DEFAULT_STOP_TIMEOUT = 10.0
path_for = storage.path_for


def signal_of(name: str) -> int:
    return int(getattr(signal, "SIG" + name))


def signal_name(text: str) -> str:
    """A signal as the record keeps it: "TERM", "USR1", "INT"."""
    name = text.upper().removeprefix("SIG")
    if name.isdigit():
        try:
            return signal.Signals(int(name)).name.removeprefix("SIG")
        except ValueError:
            raise UsageError(f"unknown signal {text!r}") from None
    if name.startswith("_") or not isinstance(getattr(signal, "SIG" + name, None), signal.Signals):
        raise UsageError(f"unknown signal {text!r}: use a name such as TERM, INT, HUP or USR1")
    return name


def controls_of(args: Args) -> dict[str, Any]:
    """The stop and reload controls given on the command line, or defaults."""
    return {
        "stop_signal": signal_name(args.stop_signal) if args.stop_signal else "TERM",
        "stop_timeout": args.stop_timeout or DEFAULT_STOP_TIMEOUT,
        "reload_signal": signal_name(args.reload_signal) if args.reload_signal else "HUP",
    }


def make(
    name: str,
    pid: int,
    argv: list[str],
    spawn: dict[str, Any],
    controls: dict[str, Any],
    wait_ready: str,
    timeout: float,
) -> dict[str, Any]:
    return {
        "version": VERSION,
        "name": name,
        "pid": pid,
        "started": time.time(),
        "command": argv,
        "spawn": {"argv": argv, **spawn},
        "wait_ready": wait_ready,
        "timeout": timeout,
        "controls": controls,
    }


def check_location(pidfile: str) -> None:
    storage.check_location(pidfile)


def write(pidfile: str, record: dict[str, Any]) -> None:
    storage.write(pidfile, record)


def read(pidfile: str) -> dict[str, Any] | None:
    """The record, None if there is none; DaemonError for one written by
    another version of daemonkit or that cannot be believed."""
    record = storage.read(pidfile)
    if record is None:
        return None
    if record.get("version") != VERSION or not isinstance(record.get("spawn"), dict):
        raise DaemonError(
            f"{path_for(pidfile)} was written by another version of {PROG}; "
            f"start the daemon again with '{PROG} start'"
        )
    return record


def read_for_display(pidfile: str) -> dict[str, Any]:
    """The record for status and list: empty if missing or not believable."""
    try:
        return read(pidfile) or {}
    except DaemonError:
        return {}
