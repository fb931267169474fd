"""How the launcher knows that a started daemon is ready.

exec            the command was exec'ed and still runs :data:`EXEC_SETTLE`
                seconds later (a command that exits at once, or forks itself
                into the background and exits, is not ready)
notify          the command, or a process it started, sent READY=1 to the
                private $NOTIFY_SOCKET
fd              the command wrote READY to the fd named in
                $DAEMONKIT_READY_FD (daemonkit's own supervisor does)
tcp:HOST:PORT   a socket of the daemon's listens on the port
unix:PATH       a socket of the daemon's listens on the path
file:PATH       the file was created or modified after the start

A Python daemon started by daemonize() is ready when it says so itself
(``READY`` on the channel, see launch.py). In every mode the daemon's main
process must be alive at the moment it counts as ready.
"""

from __future__ import annotations

import os

from . import _posix
from .errors import DaemonError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: exec readiness: how long an exec'ed command must stay up. Long enough for
#: a shell's ``server &`` or nginx's own fork to have exited, short enough
#: not to be noticed at a terminal.
EXEC_SETTLE = 0.1
#: The environment variable that names the fd of ``fd`` readiness.
READY_FD_VAR = "DAEMONKIT_READY_FD"
MODES = "exec, notify, fd, tcp:HOST:PORT, unix:PATH or file:PATH"


class WaitReady:
    """A parsed ``--wait-ready`` mode. ``check(sid)`` probes it once."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        kind, _, rest = spec.partition(":")
        self.kind = kind
        self.address: tuple[str, int] | str | None = None
        self._targets: list[tuple[int, Any]] | None = None
        self._before: tuple[int, ...] | None = None
        if kind in ("exec", "notify", "fd") and not rest:
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
        raise DaemonError(f"invalid --wait-ready {spec!r}: use {MODES}")

    @property
    def polls(self) -> bool:
        """Whether readiness is found by probing (tcp, unix, file)."""
        return self.kind in ("tcp", "unix", "file")

    def before_start(self) -> None:
        """Note what the file looks like now: only a change counts."""
        if self.kind == "file":
            self._before = _file_state(str(self.address))

    def check(self, sid: int) -> bool:
        """Ready now? ``sid`` is the daemon's session: a listening socket
        counts only if a process of that session holds it."""
        if self.kind == "file":
            now = _file_state(str(self.address))
            return now is not None and now != self._before
        if not self._accepts_connections():
            return False
        port_or_path = self.address[1] if isinstance(self.address, tuple) else self.address
        listening = _posix.listening_inodes(self.kind, port_or_path)
        if listening is None:  # no /proc: at least the connection worked
            return True
        return bool(listening & _posix.socket_inodes(_posix.session_members(sid)))

    def _accepts_connections(self) -> bool:
        import socket

        if self._targets is None:
            self._targets = _resolve(self.kind, self.address)
        for family, address in self._targets:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.5)
                if sock.connect_ex(address) == 0:
                    return True
        return False


def _file_state(path: str) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)


def _resolve(kind: str, address: Any) -> list[tuple[int, Any]]:
    """(family, address) pairs to try, looked up once."""
    import socket

    if kind == "unix":
        return [(socket.AF_UNIX, address)]
    assert isinstance(address, tuple)
    try:
        found = socket.getaddrinfo(address[0], address[1], 0, socket.SOCK_STREAM)
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
