"""The service-manager side: is someone supervising us, sd_notify, the
watchdog, and socket activation.

This is a pure-Python sd_notify(3): one datagram to $NOTIFY_SOCKET, a
filesystem path or an abstract socket ("@name"), sent without blocking, so
that a wedged manager can never hang the daemon.
"""

from __future__ import annotations

import os
import stat

from .errors import DaemonError, NotifyError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket

_SUPERVISOR_VARS = ("NOTIFY_SOCKET", "INVOCATION_ID", "LISTEN_PID")
_LISTEN_FDS_START = 3  # SD_LISTEN_FDS_START
# Socket-activation fds handed out by listen_fds(): daemonize() keeps them
# open even after the variables were unset.
_activated: set[int] = set()


def supervised() -> bool:
    """True when forking would fight a service manager (daemon(7) new-style).

    systemd marks its services with NOTIFY_SOCKET, INVOCATION_ID or
    LISTEN_PID; init started us when our parent is PID 1; inetd hands us a
    socket as stdin; a container runtime runs us as PID 1.
    """
    if any(var in os.environ for var in _SUPERVISOR_VARS):
        return True
    if os.getpid() == 1 or os.getppid() == 1:
        return True
    try:
        return stat.S_ISSOCK(os.fstat(0).st_mode)
    except OSError:
        return False


def notify(*states: str, unset_environment: bool = False, **fields: object) -> bool:
    """Send states to the service manager, like sd_notify(3).

    ``notify("READY=1", status="serving")`` sends ``READY=1\\nSTATUS=serving``:
    keyword fields become upper-case keys. Returns False when not supervised
    (no $NOTIFY_SOCKET), True once sent; raises :class:`NotifyError` when
    sending fails (never blocks). ``unset_environment`` removes
    $NOTIFY_SOCKET, so that children do not inherit it.
    """
    lines = list(states) + [f"{key.upper()}={value}" for key, value in fields.items()]
    if any("\n" in line for line in lines):
        raise ValueError("notify: a state may not contain a newline")
    address = os.environ.get("NOTIFY_SOCKET", "")
    if unset_environment:
        os.environ.pop("NOTIFY_SOCKET", None)
    if not address:
        return False
    if not address.startswith(("/", "@")):
        raise NotifyError(None, "only filesystem and abstract (@) sockets are supported", address)
    import socket

    target = "\0" + address[1:] if address.startswith("@") else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(lines).encode(), socket.MSG_DONTWAIT, target)
    except OSError as exc:
        raise NotifyError(exc.errno, exc.strerror or str(exc), address) from exc
    return True


def notify_quietly(*states: str, **fields: object) -> bool:
    """notify(), but a failure is one line on stderr, not an exception: for
    signal handlers and for ready(), where raising would kill a daemon that
    works."""
    try:
        return notify(*states, *(f"{key.upper()}={value}" for key, value in fields.items()))
    except NotifyError as exc:
        import sys

        sys.stderr.write(f"daemonkit: {exc}\n")
        return False


def reloading_states() -> tuple[str, str]:
    """RELOADING=1 with MONOTONIC_USEC, as ``Type=notify-reload`` requires."""
    import time

    return "RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"


def reloading() -> bool:
    """Tell systemd a reload started. Send READY=1 (:func:`daemonkit.ready`)
    once it is done."""
    return notify(*reloading_states())


def stopping() -> bool:
    """STOPPING=1: the daemon is shutting down."""
    return notify("STOPPING=1")


def watchdog_interval() -> float | None:
    """Seconds within which systemd expects :func:`watchdog_ping`, or None.

    None when no watchdog is configured, or it is meant for another process
    (WATCHDOG_PID). Ping at half the interval or more often.
    """
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", "0"))
        pid = os.environ.get("WATCHDOG_PID")
        if pid is not None and int(pid) != os.getpid():
            return None
    except ValueError:
        return None
    return usec / 1e6 if usec > 0 else None


def watchdog_ping() -> bool:
    """WATCHDOG=1: tell systemd the daemon is alive."""
    return notify("WATCHDOG=1")


def _listen_env() -> tuple[int, list[str]]:
    pid_text, count_text = os.environ.get("LISTEN_PID"), os.environ.get("LISTEN_FDS")
    if pid_text is None or count_text is None:
        return 0, []
    if not pid_text.isdigit() or not count_text.isdigit():
        raise DaemonError(f"invalid socket activation: LISTEN_PID={pid_text!r} LISTEN_FDS={count_text!r}")
    if int(pid_text) != os.getpid():
        return 0, []  # meant for another process (our parent, say)
    count = int(count_text)
    names = os.environ.get("LISTEN_FDNAMES", "").split(":") if count else []
    if len(names) != count:
        names = ["unknown"] * count
    return count, names


def listen_fds_with_names(unset_environment: bool = True) -> list[tuple[str, socket.socket]]:
    """The sockets passed by socket activation, with their names.

    Names come from LISTEN_FDNAMES (``FileDescriptorName=`` in the .socket
    unit), "unknown" otherwise. The fds start at 3, get FD_CLOEXEC, and
    survive daemonize()'s fd closing. Returns [] unless LISTEN_PID is us;
    malformed variables raise :class:`DaemonError`. The variables are unset
    by default, so that children do not believe the sockets are theirs.
    """
    count, names = _listen_env()
    if unset_environment:
        for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            os.environ.pop(var, None)
    if not count:
        return []
    import socket

    result = []
    for offset, name in enumerate(names):
        fd = _LISTEN_FDS_START + offset
        os.set_inheritable(fd, False)
        _activated.add(fd)
        result.append((name, socket.socket(fileno=fd)))
    return result


def listen_fds(unset_environment: bool = True) -> list[socket.socket]:
    """The sockets passed by socket activation (see listen_fds_with_names)."""
    return [sock for _, sock in listen_fds_with_names(unset_environment)]


def listen_fd_range() -> set[int]:
    """fds daemonize() must keep: passed to us, or already handed out."""
    try:
        count, _ = _listen_env()
    except DaemonError:
        count = 0
    return _activated | set(range(_LISTEN_FDS_START, _LISTEN_FDS_START + count))


from .unit import service_unit  # noqa: E402  (public here: units are the manager's side too)

__all__ = [
    "listen_fds",
    "listen_fds_with_names",
    "notify",
    "reloading",
    "service_unit",
    "stopping",
    "supervised",
    "watchdog_interval",
    "watchdog_ping",
]
