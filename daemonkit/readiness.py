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


class WaitReady:
    """A parsed ``--wait-ready`` mode. ``check()`` probes it once."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        kind, _, rest = spec.partition(":")
        self.kind = kind
        self.address: tuple[str, int] | str | None = None
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
        import socket  # here, not at import: the launcher imports it while the command starts

        if self.kind == "tcp":
            assert isinstance(self.address, tuple)
            try:
                socket.create_connection(self.address, timeout=0.5).close()
            except OSError:
                return False
            return True
        if self.kind == "unix":
            assert isinstance(self.address, str)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.5)
                try:
                    sock.connect(self.address)
                except OSError:
                    return False
            return True
        return False


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
