"""The private NOTIFY_SOCKET counts only the daemon's READY=1, and is
removed without root unlinking anything else (issue 9, item 4)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import AS_NOBODY, Cli, root_only

from daemonkit.readiness import NotifySocket

PYTHON = "/usr/bin/python3"  # one that nobody may execute

# Sends READY=1 to argv[1] when told on stdin; "fork" first forks a child
# that sends it (and stays, so that it can be placed).
SENDER = """
import os, socket, sys, time
for line in sys.stdin:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if line.strip() == "fork":
        if os.fork() == 0:
            sock.sendto(b"READY=1", sys.argv[1]); print("sent", flush=True); time.sleep(60); os._exit(0)
    else:
        sock.sendto(b"READY=1", sys.argv[1]); print("sent", flush=True)
"""


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    sock = NotifySocket(65534, 65534)  # as for a command started with --user nobody
    try:
        yield sock
    finally:
        sock.close()


class Sender:
    def __init__(self, path: str, as_nobody: bool = False, **popen: object) -> None:
        argv = [*(AS_NOBODY if as_nobody else []), PYTHON, "-c", SENDER, path]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, **popen)  # type: ignore[call-overload]

    def send(self, how: str = "self") -> None:
        self.proc.stdin.write(how + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "sent\n"

    def close(self) -> None:
        os.killpg(self.proc.pid, 9) if self._own_group() else self.proc.kill()
        self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()

    def _own_group(self) -> bool:
        try:
            return os.getpgid(self.proc.pid) == self.proc.pid
        except ProcessLookupError:
            return False


@pytest.fixture
def senders() -> Iterator[list[Sender]]:
    started: list[Sender] = []
    try:
        yield started
    finally:
        for sender in started:
            sender.close()


def test_nothing_counts_before_the_daemon_is_known(notify: NotifySocket, senders: list[Sender]) -> None:
    senders.append(Sender(notify.path))
    senders[0].send()
    assert not notify.ready_received()


@root_only
def test_another_process_of_the_service_user_does_not_count(
    notify: NotifySocket, senders: list[Sender]
) -> None:
    daemon = Sender(notify.path, as_nobody=True, start_new_session=True)
    stranger = Sender(notify.path, as_nobody=True, start_new_session=True)
    senders += [daemon, stranger]
    notify.daemon_pid = daemon.proc.pid
    stranger.send()
    stranger.send("fork")
    assert not notify.ready_received()
    daemon.send()
    assert notify.ready_received()


def test_a_descendant_of_the_daemon_counts(notify: NotifySocket, senders: list[Sender]) -> None:
    daemon = Sender(notify.path, start_new_session=True)
    senders.append(daemon)
    notify.daemon_pid = daemon.proc.pid
    daemon.send("fork")
    assert notify.ready_received()


def test_a_process_of_the_daemons_session_counts(notify: NotifySocket, senders: list[Sender]) -> None:
    daemon = Sender(notify.path, start_new_session=True)
    senders.append(daemon)
    assert not notify.accepts(daemon.proc.pid)
    notify.session = daemon.proc.pid  # its own session
    daemon.send()
    assert notify.ready_received()
    assert not notify.accepts(os.getpid())


@root_only
def test_close_never_unlinks_through_a_renamed_directory_or_a_symlink(tmp_path: Path) -> None:
    notify = NotifySocket(65534, 65534)
    victim_dir = tmp_path / "etc"
    victim_dir.mkdir()
    (victim_dir / "notify").write_text("root's file")
    # The directory's owner (the service user) moves it and leaves a symlink.
    moved = notify.directory + ".moved"
    subprocess.run([*AS_NOBODY, "mv", notify.directory, moved], check=True)
    os.symlink(victim_dir, notify.directory)
    try:
        notify.close()
        assert (victim_dir / "notify").read_text() == "root's file"
        assert os.path.islink(notify.directory)
        assert os.listdir(moved) == []  # our socket went, where it was
    finally:
        os.unlink(notify.directory)
        shutil.rmtree(moved, ignore_errors=True)


def test_close_removes_the_socket_and_directory() -> None:
    notify = NotifySocket()
    notify.close()
    notify.close()  # again: nothing
    assert not os.path.exists(notify.directory)


@root_only
@pytest.mark.timeout(30)
def test_start_is_not_fooled_by_another_process_of_the_service_user(cli: Cli) -> None:
    """A process of the service user sprays READY=1 at every notify socket
    it can reach; the daemon never says it. start must time out."""
    spray = (
        "import glob, socket, time\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
        "while True:\n"
        "    for path in glob.glob('/tmp/daemonkit-notify-*/notify'):\n"
        "        try: s.sendto(b'READY=1', path); print(path, flush=True)\n"
        "        except OSError: pass\n"
        "    time.sleep(0.005)\n"
    )
    workdir = Path(tempfile.mkdtemp(prefix="daemonkit-spray-"))
    os.chmod(workdir, 0o755)
    log = workdir / "sprayed"
    log.touch()
    os.chown(log, 65534, 65534)
    with open(log, "w") as out:
        stranger = subprocess.Popen([*AS_NOBODY, PYTHON, "-c", spray], stdout=out)
    try:
        code, out_text, err = cli(
            "start", "--name", "n", "--user", "nobody", "--chdir", "/", "--wait-ready", "notify",
            "--timeout", "2", "--", "/bin/sh", "-c", "exec sleep 60", str(cli.tmp_path),
        )  # fmt: skip
        assert code == 1, out_text
        assert "not ready after 2 s (waiting for notify)" in err
        assert log.read_text()  # it did send
    finally:
        stranger.kill()
        stranger.wait()
        shutil.rmtree(workdir)
