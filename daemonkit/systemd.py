"""The service-manager side: is someone supervising us, and sd_notify.

This is a pure-Python sd_notify(3): one datagram to $NOTIFY_SOCKET, which
may be a path or an abstract socket ("@name").
"""

from __future__ import annotations

import os
import stat

_SUPERVISOR_VARS = ("NOTIFY_SOCKET", "INVOCATION_ID", "LISTEN_PID")


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


def notify_raw(message: str) -> bool:
    """Send ``message`` to $NOTIFY_SOCKET; False when there is none."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    import socket

    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(address)
        sock.sendall(message.encode())
    return True


def listen_fd_range() -> range:
    """The fds passed by socket activation (LISTEN_FDS), if meant for us."""
    try:
        if int(os.environ.get("LISTEN_PID", "0")) != os.getpid():
            return range(0)
        return range(3, 3 + int(os.environ.get("LISTEN_FDS", "0")))
    except ValueError:
        return range(0)
