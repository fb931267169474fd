"""sd_notify, the watchdog, socket activation, supervised mode and units,
against real sockets and systemd's own tools."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import APP, Cli, Launcher, clean_env, daemonkit_as_nobody, free_port, wait_for

import daemonkit
import daemonkit.systemd
from daemonkit import DaemonError, NotifyError
from daemonkit.systemd import listen_fds, notify, reloading, watchdog_interval, watchdog_ping

ROOT = Path(__file__).parent.parent


@pytest.fixture
def receiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket standing in for systemd's notify socket."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(10)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    yield sock
    sock.close()


def test_notify_sends_states_and_fields(receiver: socket.socket) -> None:
    assert notify("READY=1", status="serving 3 clients", mainpid=1234) is True
    assert receiver.recv(4096) == b"READY=1\nSTATUS=serving 3 clients\nMAINPID=1234"
    assert watchdog_ping() is True
    assert receiver.recv(4096) == b"WATCHDOG=1"


def test_notify_to_an_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"daemonkit-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(10)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify("STOPPING=1", unset_environment=True) is True
        assert sock.recv(4096) == b"STOPPING=1"
    assert "NOTIFY_SOCKET" not in os.environ


def test_reloading_carries_the_monotonic_clock(receiver: socket.socket) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert reloading() is True
    state, stamp = receiver.recv(4096).decode().split("\n")
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert state == "RELOADING=1" and before <= int(stamp.removeprefix("MONOTONIC_USEC=")) <= after


def test_not_supervised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False


def test_notify_socket_pointing_nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    with pytest.raises(NotifyError) as info:
        notify("READY=1")
    assert str(tmp_path / "nobody-listens") in str(info.value)
    assert isinstance(info.value, OSError)


@pytest.mark.timeout(20)
def test_notify_never_blocks_on_a_full_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:  # never read
        sock.bind(str(tmp_path / "full"))
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "full"))
        with pytest.raises(NotifyError, match="cannot notify"):
            for _ in range(100_000):
                notify("WATCHDOG=1")


def test_notify_refuses_newlines(receiver: socket.socket) -> None:
    with pytest.raises(ValueError):
        notify("READY=1", status="two\nlines")


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "500000"}, 0.5),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "junk"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], expected: float | None
) -> None:
    for var in ("WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(var, raising=False)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    assert watchdog_interval() == expected


def test_listen_fds_for_another_process_or_malformed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LISTEN_PID", str(os.getppid()))
    monkeypatch.setenv("LISTEN_FDS", "1")
    assert listen_fds() == []
    assert "LISTEN_PID" not in os.environ  # unset by default
    monkeypatch.setenv("LISTEN_PID", str(os.getpid()))
    monkeypatch.setenv("LISTEN_FDS", "two")
    with pytest.raises(DaemonError, match="LISTEN_FDS='two'"):
        listen_fds()


ACTIVATED_SERVER = """
import sys
sys.path.insert(0, sys.argv[1])
import daemonkit
import daemonkit.systemd
with daemonkit.daemonize(pidfile=sys.argv[2]):  # LISTEN_PID is set: no fork, the fds survive
    [(name, listener)] = daemonkit.systemd.listen_fds_with_names()
    connection, _ = listener.accept()
    connection.sendall(f"hello from {name}, cloexec={not listener.get_inheritable()}\\n".encode())
    connection.close()
"""


def test_socket_activation_with_systemd_socket_activate(tmp_path: Path) -> None:
    port = free_port()
    activate = subprocess.Popen(
        [
            "systemd-socket-activate",
            "-l",
            f"127.0.0.1:{port}",
            "--fdname=web",
            sys.executable,
            "-c",
            ACTIVATED_SERVER,
            str(ROOT),
            str(tmp_path / "web.pid"),
        ],
        env=clean_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def connect() -> socket.socket | None:
            try:
                return socket.create_connection(("127.0.0.1", port), timeout=10)
            except ConnectionRefusedError:
                return None

        with wait_for(connect, what="systemd-socket-activate to listen") as client:
            client.settimeout(10)
            assert client.makefile().readline() == "hello from web, cloexec=True\n"
    finally:
        activate.kill()
        activate.communicate()


def test_supervised_daemon_speaks_sd_notify(launcher: Launcher, tmp_path: Path) -> None:
    notify_path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(str(notify_path))
        manager.settimeout(10)
        env = clean_env(NOTIFY_SOCKET=str(notify_path), INVOCATION_ID="test")
        proc = subprocess.Popen([sys.executable, str(APP), launcher.config()], env=env)
        try:
            assert manager.recv(4096) == b"READY=1"
            wait_for(lambda: launcher.mark("pid"), what="the body")
            proc.send_signal(signal.SIGHUP)
            assert manager.recv(4096).startswith(b"RELOADING=1\nMONOTONIC_USEC=")
            assert manager.recv(4096) == b"READY=1"
            assert launcher.mark("reload") == "x"  # READY=1 came after on_reload
            proc.send_signal(signal.SIGTERM)
            assert manager.recv(4096) == b"STOPPING=1"
            assert proc.wait(timeout=10) == 0
        finally:
            proc.kill()
            proc.wait()


UNIT_VARIANTS = [
    [],
    ["--wait-ready", "notify"],
    ["--user", "nobody", "--group", "nogroup", "--umask", "077"],
    ["--env", "GREETING=hello world", "--env", "RATE=50%", "--chdir", "/tmp"],
    ["--log", "/var/log/daemonkit-test.log"],
    ["--stdout", "/var/log/out.log", "--stderr", "/var/log/err.log", "--wait-ready", "notify"],
]


@pytest.mark.parametrize("options", UNIT_VARIANTS, ids=lambda o: " ".join(o) or "defaults")
def test_every_unit_passes_systemd_analyze_verify(cli: Cli, tmp_path: Path, options: list[str]) -> None:
    code, out, err = cli(
        "unit", "web", *options, "--", "python3", "-m", "http.server", "--bind", "127.0.0.1", "$HOME", "100%"
    )
    assert (code, err) == (0, "")
    assert f"\nExecStart={shutil.which('python3')} -m http.server " in out  # resolved on PATH
    assert "$$HOME 100%%" in out
    assert ("Type=notify" in out) == ("notify" in options)
    unit = tmp_path / "web.service"
    unit.write_text(out)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_service_unit_resolves_the_command_and_refuses_what_cannot_go_in_a_unit() -> None:
    text = daemonkit.systemd.service_unit("web", ["sleep", "60"], env={"GREETING": "100% $HOME"})
    assert f"ExecStart={shutil.which('sleep')} 60\n" in text
    assert 'Environment="GREETING=100%% $HOME"' in text  # systemd expands neither there
    with pytest.raises(DaemonError, match="command not found: no-such-command"):
        daemonkit.systemd.service_unit("web", ["no-such-command"])
    with pytest.raises(DaemonError, match="newline"):
        daemonkit.systemd.service_unit("web", ["sleep", "1\n"])


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to an unprivileged user")
def test_unit_install_for_a_user() -> None:
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="daemonkit-home-"))  # outside root's private pytest dirs
    try:
        os.chown(home, 65534, 65534)
        _install_as_nobody(home)
    finally:
        shutil.rmtree(home)


def _install_as_nobody(home: Path) -> None:
    command = ("unit", "web", "--install", "--", "/bin/sleep", "60")
    first = daemonkit_as_nobody(*command, HOME=str(home))
    installed = home / ".config" / "systemd" / "user" / "web.service"
    assert first.returncode == 0, first.stderr
    assert first.stdout == ""
    assert first.stderr == (
        f"daemonkit: installed {installed}; next: systemctl --user daemon-reload"
        " && systemctl --user enable --now web\n"
    )
    assert "WantedBy=default.target" in installed.read_text()
    again = daemonkit_as_nobody(*command, HOME=str(home))
    assert again.returncode == 1 and "exists" in again.stderr


def test_ready_after_forking_names_the_new_main_pid(launcher: Launcher, tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(str(tmp_path / "notify"))
        manager.settimeout(10)
        env = clean_env(NOTIFY_SOCKET=str(tmp_path / "notify"))
        result = launcher.run(env=env, options={"detach": True})  # forced to fork under a manager
        assert result.returncode == 0, result.stderr
        pid = int(launcher.pidfile.read_text())
        assert manager.recv(4096) == f"READY=1\nMAINPID={pid}".encode()
