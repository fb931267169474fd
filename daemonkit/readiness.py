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
    network namespace).

    The directory is the service user's when the command runs as one, so
    any process of that user could send to it: the kernel's credentials on
    each datagram (SO_PASSCRED, unix(7)) tell who sent it, and only the
    daemon (``daemon_pid``) or a descendant of it counts, or, with
    ``session``, a process of the daemon's session (systemd's
    NotifyAccess=main/all, by process rather than by cgroup). A sender that
    has already exited cannot be placed and is ignored, as systemd ignores
    it. Until ``daemon_pid`` or ``session`` is set, nothing counts.

    The directory's owner may rename it or put a symlink in its place:
    :meth:`close` removes the socket and the directory through fds opened
    at creation, so root never unlinks a file it did not create.
    """

    def __init__(
        self,
        uid: int | None = None,
        gid: int | None = None,
        *,
        daemon_pid: int | None = None,
        session: int | None = None,
    ) -> None:
        import socket
        import tempfile

        #: The daemon's PID: datagrams from it or its descendants count.
        self.daemon_pid = daemon_pid
        #: The daemon's session id: datagrams from its session count.
        self.session = session
        self.directory = tempfile.mkdtemp(prefix="daemonkit-notify-")
        self.path = os.path.join(self.directory, "notify")
        parent, name = os.path.split(self.directory)
        self._parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._dir_fd = os.open(
            name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._parent_fd
        )
        self._name = name
        self.sock: socket.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._passcred = hasattr(socket, "SO_PASSCRED") and hasattr(socket, "SCM_CREDENTIALS")
        if self._passcred:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(self.path)
        self.sock.setblocking(False)
        if uid is not None:  # the command runs as another user: let it send
            os.chown(self._dir_fd, uid, -1 if gid is None else gid)
        os.chmod(self.path, 0o666)

    def accepts(self, pid: int) -> bool:
        """Whether a datagram sent by ``pid`` counts: the daemon, a
        descendant of it (the /proc/PID/stat ppid chain), or a process of
        its session."""
        from . import _posix

        if pid <= 1 or (self.daemon_pid is None and self.session is None):
            return False
        seen = 0
        current = pid
        while current > 1 and seen < 4096:
            if current == self.daemon_pid:
                return True
            fields = _posix.proc_stat(current)
            if fields is None:
                return False
            if self.session is not None and current == pid and int(fields[3]) == self.session:
                return True
            current = int(fields[1])
            seen += 1
        return False

    def _receive(self) -> tuple[bytes, int | None]:
        """One datagram and its sender's PID (None where the kernel cannot
        tell); BlockingIOError when none is pending."""
        import socket
        import struct

        if not self._passcred:
            return self.sock.recv(4096), None
        ucred = struct.calcsize("3i")
        data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(ucred))
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(payload) >= ucred:
                return data, struct.unpack("3i", payload[:ucred])[0]
        return data, 0  # no credentials: not from the daemon

    def ready_received(self) -> bool:
        """Drain pending datagrams; True if one of them said READY=1 and
        came from the daemon (see :meth:`accepts`)."""
        ready = False
        while True:
            try:
                data, sender = self._receive()
            except BlockingIOError:
                return ready
            if b"READY=1" in data.split(b"\n") and (sender is None or self.accepts(sender)):
                ready = True

    def close(self) -> None:
        """Remove the socket and its directory, where they are now, through
        the fds opened at creation; never by a path someone else could have
        redirected."""
        if self.sock.fileno() < 0:
            return
        self.sock.close()
        try:
            os.unlink("notify", dir_fd=self._dir_fd)
            st = os.fstat(self._dir_fd)
            now = os.stat(self._name, dir_fd=self._parent_fd, follow_symlinks=False)
            if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):  # still ours, still there
                os.rmdir(self._name, dir_fd=self._parent_fd)
        except OSError:
            pass
        finally:
            os.close(self._dir_fd)
            os.close(self._parent_fd)
