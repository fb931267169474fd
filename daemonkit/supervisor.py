"""The per-app supervisor of ``daemonkit start --restart``: its configuration,
how it is started, and the state record it keeps.

The daemonized process exec's ``command(config)``: a fresh, minimal
interpreter (``-I -S``, and ``daemonkit/__init__`` is not run) that imports
only os, time, select, errno, signal and a few small daemonkit modules
(socket too with a notify socket, ctypes for the subreaper), so that each
supervisor costs a few MB rather than the ~7 MB of an interpreter with
subprocess, logging, argparse and json (docs/performance.md). The configuration
travels as ``key=value`` arguments, so no parser is imported either.

The supervisor holds the pidfile's lock (inherited across the exec; the
pidfile names the supervisor) and writes the state record ``NAME.state``
beside ``NAME.pid``: flat JSON, replaced atomically. Its loop is in
``supervision.py``.

Control is by signal (see supervision.py for the table): TERM/INT stop,
HUP reloads, ``RESTART_SIGNAL`` restarts the app, ``ROTATE_SIGNAL`` rotates
its log; every other catchable signal is passed on to the app.
"""

from __future__ import annotations

import os
import signal
import sys

TYPE_CHECKING = False  # see __init__.py
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

# Real-time signals queue (one delivery per send, unlike standard ones) and
# the kernel lets only root or the supervisor's own user send them: the same
# check a control socket would make with SO_PEERCRED, without a socket path
# (sun_path's 108 bytes) or a listener to keep. The highest two are the
# least likely to mean something to an app.
RESTART_SIGNAL = signal.SIGRTMAX
ROTATE_SIGNAL = signal.SIGRTMAX - 1

POLICIES = ("no", "on-failure", "always")


class Config:
    """Everything the supervisor needs, with the CLI's defaults."""

    name: str
    pidfile: str
    executable: str
    log: str
    log_max_size: int
    log_keep: int
    log_timestamps: str
    restart: str
    restart_sec: float
    restart_max_delay: float
    min_uptime: float
    start_limit_burst: int
    wait_ready: str
    watchdog_sec: float
    stop_signal: int
    stop_timeout: float
    reload_signal: int
    uid: int
    gid: int
    groups: str

    FIELDS: dict[str, Any] = {
        "name": "",
        "pidfile": "",
        "executable": "",
        "log": "",
        "log_max_size": 10 << 20,
        "log_keep": 5,
        "log_timestamps": "none",
        "restart": "on-failure",
        "restart_sec": 0.1,
        "restart_max_delay": 30.0,
        "min_uptime": 1.0,
        "start_limit_burst": 10,
        "wait_ready": "exec",
        "watchdog_sec": 0.0,
        "stop_signal": int(signal.SIGTERM),
        "stop_timeout": 10.0,
        "reload_signal": int(signal.SIGHUP),
        "uid": -1,
        "gid": -1,
        "groups": "",
    }

    def __init__(self, argv: Sequence[str] = (), **values: Any) -> None:
        self.argv = list(argv)
        for key, default in self.FIELDS.items():
            setattr(self, key, default)
        for key, value in values.items():
            self.set(key, value)

    def set(self, key: str, value: Any) -> None:
        default = self.FIELDS.get(key)
        if default is None:
            raise ValueError(f"unknown supervisor setting {key!r}")
        setattr(self, key, type(default)(value))

    def path_of_state(self) -> str:
        return state_path(self.pidfile)

    def to_argv(self) -> list[str]:
        return [f"{key}={getattr(self, key)}" for key in self.FIELDS] + ["--", *self.argv]

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> Config:
        args = list(argv)
        split = args.index("--")
        config = cls(args[split + 1 :])
        for item in args[:split]:
            key, _, value = item.partition("=")
            config.set(key, value)
        return config


# The supervisor's bootstrap: daemonkit's parent directory on sys.path and an
# empty package object, so that daemonkit/__init__ (and what it imports for
# the library's users) is never run in the supervisor.
_BOOTSTRAP = (
    "import sys;p=type(sys)('daemonkit');p.__path__=[sys.argv[1]];sys.modules['daemonkit']=p;"
    "from daemonkit.supervision import main;main(sys.argv[2:])"
)


def command(config: Config) -> list[str]:
    """The argv that the daemonized process exec's to become the supervisor."""
    package = os.path.dirname(os.path.abspath(__file__))
    return [sys.executable, "-I", "-S", "-c", _BOOTSTRAP, package, *config.to_argv()]


def state_path(pidfile: str) -> str:
    """``NAME.state`` beside ``NAME.pid``."""
    return (pidfile[:-4] if pidfile.endswith(".pid") else pidfile) + ".state"


def encode(value: Any) -> str:
    """JSON for the few types a state record holds (json costs ~1 MB here)."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        out = ['"']
        for ch in value:
            if ch in '"\\':
                out.append("\\" + ch)
            elif ch < " " or ch == "\x7f" or "\ud800" <= ch <= "\udfff":
                out.append(f"\\u{ord(ch):04x}")
            else:
                out.append(ch)
        return "".join(out) + '"'
    if isinstance(value, dict):
        return "{" + ", ".join(f"{encode(str(k))}: {encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(encode(v) for v in value) + "]"
    raise TypeError(f"cannot encode {type(value).__name__}")


def write_state(path: str, state: dict[str, Any]) -> None:
    """Replace the record atomically: a reader sees the old one or the new one."""
    temporary = f"{path}.{os.getpid()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(temporary, flags, 0o644)
    except FileExistsError:  # left by a supervisor killed mid-write with our PID
        os.unlink(temporary)
        fd = os.open(temporary, flags, 0o644)
    try:
        os.write(fd, (encode(state) + "\n").encode("utf-8", "replace"))
        os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def read_state(pidfile: str) -> dict[str, Any] | None:
    """The supervisor's state record, or None (no supervisor ever ran, or
    the file is not one to believe: written by someone but root or us, or
    writable by others, as start records are judged)."""
    import json

    try:
        fd = os.open(state_path(pidfile), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    st = os.fstat(fd)
    if st.st_uid not in (0, os.geteuid()) or st.st_mode & 0o022 or (st.st_mode & 0o170000) != 0o100000:
        os.close(fd)
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            data = json.loads(f.read(1 << 20))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def build(
    argv: Sequence[str],
    *,
    pidfile: str,
    log: str,
    user: str | int | None = None,
    group: str | int | None = None,
    path: str | None = None,
    **settings: Any,
) -> Config:
    """A Config for ``argv``, checked now, in the launcher: the program is
    found on ``path`` (StartupError 127/126 otherwise) and user and group
    are resolved to ids (DaemonError for unknown ones)."""
    from .command import find_executable
    from .privileges import resolve

    executable = find_executable(argv[0], path)
    config = Config(argv, pidfile=pidfile, log=log, executable=executable, **settings)
    if config.restart not in POLICIES:
        raise ValueError(f"invalid restart policy {config.restart!r}: use no, on-failure or always")
    creds = resolve(user, group)
    if creds is not None:
        config.uid, config.gid, config.groups = creds.uid, creds.gid, ",".join(map(str, creds.groups))
    return config


def signal_supervisor(pidfile: str, sig: int) -> bool:
    """Send ``sig`` to the process holding ``pidfile``'s lock (the
    supervisor); False if none does. Only the lock holder, pinned by a
    pidfd and checked again, is signalled (see control.py)."""
    from . import _posix
    from .control import status
    from .kill import Target

    state = status(pidfile)
    if not state.running or state.pid is None or state.file_id is None:
        return False
    try:
        with Target(state.pid) as target:
            if _posix.may_inspect(state.pid) and not _posix.holds_flock(state.pid, *state.file_id):
                return False  # exited, and its PID reused, before it was pinned
            target.send(sig, group=False)
    except ProcessLookupError:
        return False
    return True
