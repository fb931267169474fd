"""How ``spawn()`` knows that a started command is ready.

exec            the exec succeeded
notify          the command sent READY=1 to the private $NOTIFY_SOCKET
tcp:HOST:PORT   the port accepts a connection
unix:PATH       the socket accepts a connection
file:PATH       the file exists
"""

from __future__ import annotations

import os

from .errors import DaemonError

TYPE_CHECKING = False  # see __init__.py
if TYPE_CHECKING:
    import socket as _socket
    from typing import Any
else:
    # The C module behind `socket`. Checks run every millisecond while the
    # command starts, and compete with it for the CPU: its plain calls cost
    # less than socket's wrappers, and importing `socket` (enum, selectors)
    # would take ~5 ms of that CPU time.
    try:
        import _socket
    except ImportError:  # not CPython
        import socket as _socket


class WaitReady:
    """A parsed ``--wait-ready`` mode. ``check()`` probes it once."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        kind, _, rest = spec.partition(":")
        self.kind = kind
        self.address: tuple[str, int] | str | None = None
        self._targets: list[tuple[int, Any]] | None = None
        if kind in ("exec", "notify") and not rest:
            return
        if kind in ("unix", "file") and rest:
            self.address = os.path.abspath(rest)
            return
        if kind == "tcp":
            host, _, port = rest.rpartition(":")
            host = host.strip("[]")
            if host and port.isdigit() and 0 < int(port) < 65536:
                self.address = (host, int(port))
                return
        raise DaemonError(
            f"invalid --wait-ready {spec!r}: use exec, notify, tcp:HOST:PORT, unix:PATH or file:PATH"
        )

    @property
    def polls(self) -> bool:
        return self.kind in ("tcp", "unix", "file")

    def check(self) -> bool:
        if self.kind == "file":
            assert isinstance(self.address, str)
            return os.path.exists(self.address)
        if self.kind not in ("tcp", "unix"):
            return False
        if self._targets is None:
            self._targets = _resolve(self.kind, self.address)
        for family, address in self._targets:
            sock = _socket.socket(family, _socket.SOCK_STREAM)
            try:
                sock.settimeout(0.5)
                if sock.connect_ex(address) == 0:
                    return True
            finally:
                sock.close()
        return False


def _resolve(kind: str, address: Any) -> list[tuple[int, Any]]:
    """(family, address) pairs to try, looked up once."""
    if kind == "unix":
        return [(_socket.AF_UNIX, address)]
    assert isinstance(address, tuple)
    try:
        found = _socket.getaddrinfo(address[0], address[1], 0, _socket.SOCK_STREAM)
    except OSError:
        return []  # an unknown host is never ready; the timeout says so
    return [(family, sockaddr) for family, _, _, _, sockaddr in found]


class NotifySocket:
    """A private $NOTIFY_SOCKET for the command: a datagram socket in a new
    0700 directory (an abstract name could be spoofed by anyone in the
    network namespace)."""

    def __init__(self, uid: int | None = None, gid: int | None = None) -> None:
        import socket
        import tempfile

        self.directory = tempfile.mkdtemp(prefix="daemonkit-notify-")
        self.path = os.path.join(self.directory, "notify")
        self.sock: socket.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.bind(self.path)
        self.sock.setblocking(False)
        if uid is not None:  # the command runs as another user: let it send
            os.chown(self.directory, uid, -1 if gid is None else gid)
        os.chmod(self.path, 0o666)

    def ready_received(self) -> bool:
        """Drain pending datagrams; True if one of them said READY=1."""
        ready = False
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return ready
            ready = ready or b"READY=1" in data.split(b"\n")

    def close(self) -> None:
        self.sock.close()
        try:
            os.unlink(self.path)
            os.rmdir(self.directory)
        except OSError:
            pass
