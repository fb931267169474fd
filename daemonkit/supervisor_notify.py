"""The supervisor's private $NOTIFY_SOCKET, kept for the app's whole life.

The same shape as readiness.NotifySocket (a datagram socket in a new 0700
directory that only the app's user can enter; an abstract name could be
spoofed by anyone in the network namespace), built on the C socket module
and os.mkdir: `socket` and `tempfile` would add ~1.5 MB to every
supervisor.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # see __init__.py
if TYPE_CHECKING:
    import socket as _socket
else:
    try:
        import _socket
    except ImportError:  # not CPython
        import socket as _socket


class NotifySocket:
    def __init__(self, uid: int = -1, gid: int = -1) -> None:
        base = os.environ.get("TMPDIR") or "/tmp"
        while True:
            self.directory = os.path.join(base, f"daemonkit-notify-{os.urandom(6).hex()}")
            try:
                os.mkdir(self.directory, 0o700)
                break
            except FileExistsError:
                continue
        self.path = os.path.join(self.directory, "notify")
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
        self.sock.bind(self.path)
        self.sock.setblocking(False)
        if uid >= 0:  # the app runs as another user: let it send
            os.chown(self.directory, uid, gid)
        os.chmod(self.path, 0o666)
        self.fd = self.sock.fileno()

    def receive(self) -> list[str]:
        """The lines of every pending datagram."""
        lines: list[str] = []
        while True:
            try:
                data = self.sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                return lines
            lines += data.decode("utf-8", "replace").split("\n")

    def close(self) -> None:
        self.sock.close()
        try:
            os.unlink(self.path)
            os.rmdir(self.directory)
        except OSError:
            pass
