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


def _private_directory() -> str:
    """A new 0700 directory in $TMPDIR or /tmp (what tempfile.mkdtemp does,
    without the ~1.5 MB its imports would add to every supervisor)."""
    base = os.environ.get("TMPDIR") or "/tmp"
    while True:
        directory = os.path.join(base, f"daemonkit-notify-{os.urandom(6).hex()}")
        try:
            os.mkdir(directory, 0o700)
            return directory
        except FileExistsError:
            continue


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

        #: The daemon's PID: datagrams from it or its descendants count.
        self.daemon_pid = daemon_pid
        #: The daemon's session id: datagrams from its session count.
        self.session = session
        self.directory = _private_directory()
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

    def receive(self) -> list[str]:
        """The lines of every pending datagram that came from the daemon
        (see :meth:`accepts`); others are dropped."""
        lines: list[str] = []
        while True:
            try:
                data, sender = self._receive()
            except (BlockingIOError, InterruptedError):
                return lines
            if sender is None or self.accepts(sender):
                lines += data.decode("utf-8", "replace").split("\n")

    def ready_received(self) -> bool:
        """Drain pending datagrams; True if one of the daemon's said READY=1."""
        return "READY=1" in self.receive()

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
