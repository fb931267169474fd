"""What ``daemonkit start`` remembers about a daemon, beside its pidfile.

For pidfile ``P.pid`` the record is ``P.json``: the name, the command, the
start options and the start time, so that ``restart`` can start it again the
same way and ``status``/``list`` can show the command. The pidfile itself
stays exactly ``PID\\n``.
"""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False  # see daemonkit/__init__.py
if TYPE_CHECKING:
    from typing import Any


def path_for(pidfile: str) -> str:
    base = pidfile[:-4] if pidfile.endswith(".pid") else pidfile
    return base + ".json"


def write(pidfile: str, record: dict[str, Any]) -> None:
    """Write atomically: a reader sees the old record or the new one."""
    target = path_for(pidfile)
    temporary = f"{target}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=2)
            f.write("\n")
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def read(pidfile: str) -> dict[str, Any] | None:
    """The record, or None if there is none or it is unreadable."""
    try:
        fd = os.open(path_for(pidfile), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        with os.fdopen(fd) as f:
            data = json.loads(f.read(1 << 20))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
