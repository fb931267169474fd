"""Each promise of issue 9 at its edges, with real programs: node,
``python3 -m http.server``, nginx, shells that background a job, daemons
that ignore SIGTERM or call setsid(), as root and as nobody."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from support import (
    AS_NOBODY,
    ROOT,
    Cli,
    alive,
    clean_env,
    kill_everything_under,
    proc_fds,
    proc_stat,
    proc_status,
    processes_mentioning,
    processes_using,
    root_only,
    signal_set,
    wait_for,
    world_readable_copy,
)
from test_cli import free_port

import daemonkit
from daemonkit.kill import Target

NOBODY = 65534


# ---------------------------------------------------------------- helpers


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "daemonkit", *args]


def cli_env(cli: Cli) -> dict[str, str]:
    return clean_env(DAEMONKIT_RUNDIR=str(cli.rundir), PYTHONPATH=str(world_readable_copy()))


def running_pid(pidfile: Path) -> int | None:
    """The PID the pidfile names, once that process is alive."""
    try:
        text = pidfile.read_text()
    except FileNotFoundError:
        return None
    return int(text) if text.strip() and alive(int(text)) else None


def exe_of(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def write_script(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.fixture
def public(public: Path) -> Path:
    """The shared world-readable directory, with ``run/`` owned by nobody."""
    (public / "run").mkdir()
    os.chown(public / "run", NOBODY, NOBODY)
    return public


def as_nobody(*args: str, cwd: str = "/", **env: str) -> subprocess.CompletedProcess[str]:
    """The daemonkit CLI as nobody, without $XDG_RUNTIME_DIR or $DAEMONKIT_RUNDIR
    unless given."""
    environ = clean_env(PYTHONPATH=str(world_readable_copy()))
    for name in ("XDG_RUNTIME_DIR", "DAEMONKIT_RUNDIR", "XDG_CONFIG_HOME"):
        environ.pop(name, None)
    environ.update(env)
    return subprocess.run(
        [*AS_NOBODY, *cli_argv(*args)], capture_output=True, text=True, timeout=30, env=environ, cwd=cwd
    )


class Listener:
    """Someone else's listening socket, bound before the daemon starts."""

    def __init__(self, family: int, address: object) -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind(address)
        self.sock.listen()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


# The system's Python: nobody may not read the one running the tests.
SYSTEM_PYTHON = "/usr/bin/python3"


def http_server(port: int, directory: Path) -> list[str]:
    python = SYSTEM_PYTHON if os.path.exists(SYSTEM_PYTHON) else sys.executable
    return [python, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(directory)]


# ---------------------------------------------- 6: readiness is the daemon's


def answers(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_tcp_ready_does_not_count_a_port_someone_else_listens_on(cli: Cli, tmp_path: Path) -> None:
    port = free_port()
    with Listener(socket.AF_INET, ("127.0.0.1", port)):
        code, out, err = cli(
            "start", "--name", "web", "--wait-ready", f"tcp:127.0.0.1:{port}", "--timeout", "20",
            "--", *http_server(port, tmp_path),
        )  # fmt: skip
        # The server died of EADDRINUSE while the foreign port answered.
        assert code == 1 and out == ""
        assert err.startswith("daemonkit: web: exited with status 1 before it was ready\n")
        assert "Address already in use" in err  # the log's last lines say why
        # A daemon that lives but never listens is not ready either.
        code, out, err = cli(
            "start", "--name", "nap", "--wait-ready", f"tcp:127.0.0.1:{port}", "--timeout", "0.5",
            "--", cli.sleep, "60",
        )  # fmt: skip
        assert (code, out) == (1, "")
        assert (
            err == f"daemonkit: nap: not ready after 0.5 s (waiting for tcp:127.0.0.1:{port}); stopped it\n"
        )
    wait_for(lambda: not processes_using(tmp_path), what="nothing left running")


def test_tcp_ready_does_not_count_another_programs_server(cli: Cli, tmp_path: Path) -> None:
    port, other = free_port(), tmp_path / "other"
    other.mkdir()
    server = subprocess.Popen(http_server(port, other), stderr=subprocess.DEVNULL)  # already serving
    try:
        wait_for(lambda: answers(port), what="the other server")
        code, out, err = cli(
            "start", "--name", "web", "--wait-ready", f"tcp:127.0.0.1:{port}", "--timeout", "20",
            "--", *http_server(port, tmp_path),
        )  # fmt: skip
        assert code == 1 and out == ""
        assert err.startswith("daemonkit: web: exited with status 1 before it was ready\n")
        assert alive(server.pid)  # theirs, untouched
    finally:
        server.kill()
        server.wait()


def test_unix_ready_does_not_count_a_socket_someone_else_listens_on(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    with Listener(socket.AF_UNIX, str(path)):
        code, out, err = cli(
            "start",
            "--name",
            "nap",
            "--wait-ready",
            f"unix:{path}",
            "--timeout",
            "0.5",
            "--",
            cli.sleep,
            "60",
        )
    assert (code, out) == (1, "")
    assert err == f"daemonkit: nap: not ready after 0.5 s (waiting for unix:{path}); stopped it\n"
    wait_for(lambda: not processes_using(tmp_path), what="nothing left running")


def test_file_ready_counts_only_a_change_after_the_start(cli: Cli, tmp_path: Path) -> None:
    flag = tmp_path / "ready"
    flag.write_text("")  # left by an earlier run
    code, _, err = cli(
        "start", "--name", "old", "--wait-ready", f"file:{flag}", "--timeout", "0.5", "--", cli.sleep, "60"
    )
    assert (
        code == 1 and err == f"daemonkit: old: not ready after 0.5 s (waiting for file:{flag}); stopped it\n"
    )
    script = f'echo up >> {shlex.quote(str(flag))}; exec "$0" 60'
    code, out, err = cli(
        "start", "--name", "new", "--wait-ready", f"file:{flag}", "--", "sh", "-c", script, cli.sleep
    )
    assert (code, err) == (0, "") and out.startswith(f"started new (pid {cli.pid('new')})")


@root_only
def test_tcp_ready_as_nobody_sees_its_own_socket_and_not_roots(public: Path) -> None:
    pidfile = public / "run" / "web.pid"
    port = free_port()
    with Listener(socket.AF_INET, ("127.0.0.1", port)):  # root's
        result = as_nobody(
            "start", "--name", "web", "--pidfile", str(pidfile), "--wait-ready", f"tcp:127.0.0.1:{port}",
            "--timeout", "20", "--", *http_server(port, public),
        )  # fmt: skip
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("daemonkit: web: exited with status 1 before it was ready\n")
    port = free_port()
    result = as_nobody(
        "start", "--name", "web", "--pidfile", str(pidfile), "--wait-ready", f"tcp:127.0.0.1:{port}",
        "--timeout", "20", "--", *http_server(port, public),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    pid = int(pidfile.read_text())
    assert (
        result.stdout.startswith(f"started web (pid {pid})") and proc_status(pid)["Uid"].split()[0] == "65534"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    result = as_nobody("stop", "--pidfile", str(pidfile))
    assert result.returncode == 0 and not alive(pid)


# ------------------------------------ 7: a program that forks into the background


NGINX_CONF = """\
worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/error.log;
{daemon}
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{ listen 127.0.0.1:{port}; location / {{ return 200 "hi\\n"; }} }}
}}
"""


def nginx(tmp_path: Path, port: int, daemon_off: bool = False) -> list[str]:
    prefix = tmp_path / "nginx"
    prefix.mkdir(exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(d=prefix, port=port, daemon="daemon off;" if daemon_off else ""))
    return ["nginx", "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)]


@root_only
@pytest.mark.parametrize("mode", ["exec", "tcp"])
def test_nginx_that_daemonizes_itself_is_refused_and_stopped(cli: Cli, tmp_path: Path, mode: str) -> None:
    port = free_port()
    ready = "exec" if mode == "exec" else f"tcp:127.0.0.1:{port}"  # its master listens, from another session
    code, out, err = cli("start", "--name", "nginx", "--wait-ready", ready, "--", *nginx(tmp_path, port))
    assert code != 0 and out == ""
    first = err.splitlines()[0]
    assert first.startswith("daemonkit: nginx: exited with status 0 while processes it started live on (")
    assert first.endswith(
        "it forks itself into the background; run it in the foreground, e.g. nginx -g 'daemon off;'"
    )
    assert err.count("forks itself") == 1
    wait_for(lambda: not processes_using(tmp_path), what="every nginx process to be gone")
    assert daemonkit.status(cli.pidfile("nginx")).state == "stopped"
    # The hint works: in the foreground it starts, answers and stops.
    port = free_port()
    code, out, err = cli(
        "start",
        "--name",
        "nginx",
        "--wait-ready",
        f"tcp:127.0.0.1:{port}",
        "--",
        *nginx(tmp_path, port, daemon_off=True),
    )
    assert (code, err) == (0, ""), err
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    assert cli("stop", "nginx")[0] == 0
    wait_for(lambda: not processes_using(tmp_path), what="every nginx process to be gone")


def test_shell_that_backgrounds_its_server_is_refused_and_stopped(cli: Cli, tmp_path: Path) -> None:
    code, out, err = cli("start", "--name", "bg", "--", "sh", "-c", f"{shlex.quote(cli.sleep)} 100 &")
    assert code == 1 and out == ""
    assert err.startswith("daemonkit: bg: exited with status 0 while processes it started live on (")
    assert "it forks itself into the background; run it in the foreground" in err
    assert len(err.splitlines()) == 1
    wait_for(lambda: not processes_mentioning(cli.sleep), what="the backgrounded sleep to be stopped")
    assert not (cli.rundir / "bg.json").exists()


# ------------------------------------- 8: an interrupted or dead launcher


def _launch_waiting(cli: Cli, tmp_path: Path, flag: str = "never") -> tuple[subprocess.Popen[str], int]:
    """``daemonkit start`` as a process, waiting for a file that does not
    come; returns it with the daemon's PID once the daemon runs."""
    launcher = subprocess.Popen(
        cli_argv("start", "--name", "nap", "--wait-ready", f"file:{tmp_path / flag}", "--", cli.sleep, "60"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(cli),
    )
    try:
        pid = wait_for(lambda: running_pid(cli.pidfile("nap")), what="the daemon")
        wait_for(lambda: exe_of(pid) == "/usr/bin/sleep", what="the command to run")
        # The watcher, the daemon's parent while it starts, holds neither the
        # pidfile's lock nor anything else the launcher had open.
        watcher = proc_stat(pid)["ppid"]
        assert watcher != launcher.pid and proc_stat(watcher)["ppid"] == launcher.pid
        assert str(cli.pidfile("nap")) not in proc_fds(watcher).values()
    except BaseException:
        launcher.kill()
        launcher.communicate()  # reaps it and closes its pipes
        raise
    return launcher, pid


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupting_the_launcher_stops_the_half_started_daemon(
    cli: Cli, tmp_path: Path, sig: signal.Signals, status: int
) -> None:
    launcher, pid = _launch_waiting(cli, tmp_path)
    try:
        launcher.send_signal(sig)
        out, err = launcher.communicate(timeout=15)
    finally:
        launcher.kill()
    assert launcher.returncode == status
    assert (out, err) == ("", f"daemonkit: nap: interrupted by {sig.name}; stopped it\n")
    assert not alive(pid)
    assert not (cli.rundir / "nap.json").exists()
    # No watcher, no daemon: nothing of the start is left.
    wait_for(lambda: not processes_using(tmp_path), what="nothing left running")


@root_only
def test_interrupting_a_launcher_run_as_nobody_stops_its_daemon(public: Path) -> None:
    sleep, pidfile = public / "sleep", public / "run" / "nap.pid"
    sleep.symlink_to("/bin/sleep")
    environ = clean_env(PYTHONPATH=str(world_readable_copy()))
    environ.pop("DAEMONKIT_RUNDIR", None)
    never = public / "never"
    argv = cli_argv("start", "--name", "nap", "--pidfile", str(pidfile), "--wait-ready", f"file:{never}")
    launcher = subprocess.Popen(
        [*AS_NOBODY, *argv, "--", str(sleep), "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ, cwd="/",
    )  # fmt: skip
    try:
        pid = wait_for(lambda: running_pid(pidfile), what="the daemon")
        wait_for(lambda: exe_of(pid) == "/usr/bin/sleep", what="the command to run")
        assert proc_status(pid)["Uid"].split()[0] == str(NOBODY)
        launcher.send_signal(signal.SIGINT)
        out, err = launcher.communicate(timeout=15)
    finally:
        launcher.kill()
        launcher.communicate()  # reaps it and closes its pipes
    assert (launcher.returncode, out, err) == (130, "", "daemonkit: nap: interrupted by SIGINT; stopped it\n")
    wait_for(lambda: not processes_using(public), what="nothing left running")


def test_a_hangup_does_not_stop_the_start(cli: Cli, tmp_path: Path) -> None:
    launcher, pid = _launch_waiting(cli, tmp_path, flag="ready")
    try:
        launcher.send_signal(signal.SIGHUP)
        (tmp_path / "ready").write_text("up")
        out, err = launcher.communicate(timeout=15)
    finally:
        launcher.kill()
    assert (launcher.returncode, err) == (0, "")
    assert out.startswith(f"started nap (pid {pid})")
    assert json.loads((cli.rundir / "nap.json").read_text())["pid"] == pid
    assert alive(pid) and daemonkit.status(cli.pidfile("nap")).pid == pid
    assert signal.SIGHUP not in signal_set(proc_status(pid)["SigIgn"])  # the daemon's own HUP is untouched


def _tmux(server: str, *args: str) -> str:
    return subprocess.run(
        ["tmux", "-L", server, *args], check=True, capture_output=True, text=True, timeout=10
    ).stdout


def test_closing_the_terminal_of_a_waiting_start_completes_it(cli: Cli, tmp_path: Path) -> None:
    server = f"daemonkit-promises-{os.getpid()}"
    command = shlex.join(
        cli_argv(
            "start", "--name", "nap", "--wait-ready", f"file:{tmp_path / 'ready'}", "--", cli.sleep, "60"
        )
    )
    env = cli_env(cli)
    try:
        subprocess.run(
            ["tmux", "-L", server, "new-session", "-d", "-s", "term", command],
            check=True, capture_output=True, timeout=10, env=env,
        )  # fmt: skip
        pid = wait_for(lambda: running_pid(cli.pidfile("nap")), what="the daemon")
        tmux_pid, launcher = map(int, _tmux(server, "display-message", "-p", "#{pid} #{pane_pid}").split())
        _tmux(server, "kill-server")  # the terminal goes away: a real hangup
        # Once the server is gone its pty is closed, and the hangup was sent.
        wait_for(lambda: not alive(tmux_pid), what="the terminal to close")
        assert alive(launcher)
        (tmp_path / "ready").write_text("up")
        wait_for(lambda: not alive(launcher), what="the start to complete")
        record = cli.rundir / "nap.json"
        assert json.loads(record.read_text())["pid"] == pid
        assert alive(pid) and daemonkit.status(cli.pidfile("nap")).pid == pid
    finally:
        subprocess.run(["tmux", "-L", server, "kill-server"], capture_output=True, timeout=10)


def test_kill_9_of_the_waiting_launcher_leaves_nothing_running(cli: Cli, tmp_path: Path) -> None:
    launcher, pid = _launch_waiting(cli, tmp_path)
    launcher.kill()
    launcher.communicate(timeout=10)
    # The watcher sees its lifeline close, stops the daemon and exits.
    wait_for(lambda: not processes_using(tmp_path), timeout=10, what="no watcher and no daemon")
    assert not alive(pid)
    assert daemonkit.status(cli.pidfile("nap")).state in ("stopped", "stale")


# ------------------------------------------- 9: a record that cannot be written


def test_a_record_that_cannot_be_written_stops_the_daemon(cli: Cli, tmp_path: Path) -> None:
    cli.rundir.mkdir()
    (cli.rundir / "nap.json").mkdir()  # planted where the record goes
    code, out, err = cli("start", "--name", "nap", "--", cli.sleep, "60")
    assert code == 1 and out == ""
    assert err.startswith("daemonkit: nap: started, but could not record it (") and err.endswith(
        "; stopped it\n"
    )
    assert "Is a directory" in err and len(err.splitlines()) == 1
    wait_for(lambda: not processes_mentioning(cli.sleep), what="the daemon to be stopped")
    assert daemonkit.status(cli.pidfile("nap")).state == "stopped"


def test_a_name_too_long_for_the_record_stops_the_daemon(cli: Cli) -> None:
    name = "n" * 251  # NAME.pid and NAME.log fit in NAME_MAX (255), NAME.json does not
    code, _, err = cli("start", "--name", name, "--", cli.sleep, "60")
    assert code == 1
    assert err.startswith(f"daemonkit: {name}: started, but could not record it (") and err.endswith(
        "; stopped it\n"
    )
    assert "File name too long" in err
    wait_for(lambda: not processes_mentioning(cli.sleep), what="the daemon to be stopped")


@root_only
def test_a_read_only_record_location_stops_the_daemon_as_nobody(public: Path) -> None:
    # nobody may use its own pidfile in root's directory, but not create the
    # record beside it.
    readonly = public / "readonly"
    readonly.mkdir()
    pidfile = readonly / "web.pid"
    pidfile.touch()
    os.chown(pidfile, NOBODY, NOBODY)
    sleep = public / "sleep"
    sleep.symlink_to("/bin/sleep")
    log = public / "run" / "web.log"
    where = ["--pidfile", str(pidfile), "--log", str(log)]
    result = as_nobody("start", "--name", "web", *where, "--", str(sleep), "60")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("daemonkit: web: started, but could not record it (")
    assert "Permission denied" in result.stderr and result.stderr.endswith("; stopped it\n")
    assert daemonkit.status(pidfile).state in ("stopped", "stale")
    wait_for(lambda: not processes_mentioning(str(sleep)), what="the daemon to be stopped")


# --------------------------------------------------------- 10: reload never kills


NODE_APP = (Path(__file__).parent / "node_app.js").read_text()


def test_reload_refuses_a_node_server_without_a_hup_handler(cli: Cli, tmp_path: Path) -> None:
    app = tmp_path / "app.js"
    app.write_text(NODE_APP)
    port = free_port()
    code, _, err = cli(
        "start", "--name", "node", "--wait-ready", f"tcp:127.0.0.1:{port}", "--", "node", str(app), str(port)
    )
    assert code == 0, err
    pid = int(cli.pidfile("node").read_text())
    code, out, err = cli("reload", "node")
    assert (code, out) == (1, "")
    assert err == (
        f"daemonkit: node: pid {pid} has no handler for it, so it would die; "
        "not sent (--force sends SIGHUP anyway)\n"
    )
    assert alive(pid)
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    code, _, err = cli("reload", "node", "--force")  # sent anyway: node dies of it
    wait_for(lambda: not alive(pid), what="node to die of SIGHUP")
    assert code == 0 or err == f"daemonkit: node: pid {pid} exited on SIGHUP\n"


def test_reload_refuses_python_http_server_as_root_and_as_nobody(cli: Cli, public: Path) -> None:
    port = free_port()
    code, _, err = cli(
        "start", "--name", "web", "--wait-ready", f"tcp:127.0.0.1:{port}", "--", *http_server(port, public)
    )
    assert code == 0, err
    pid = int(cli.pidfile("web").read_text())
    code, _, err = cli("reload", "web")
    assert code == 1 and "has no handler for it, so it would die; not sent" in err and alive(pid)
    if os.geteuid() != 0:
        return
    pidfile = public / "run" / "web.pid"
    port = free_port()
    result = as_nobody(
        "start",
        "--pidfile",
        str(pidfile),
        "--wait-ready",
        f"tcp:127.0.0.1:{port}",
        "--",
        *http_server(port, public),
    )
    assert result.returncode == 0, result.stderr
    nobodys = int(pidfile.read_text())
    result = as_nobody("reload", "--pidfile", str(pidfile))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        f"daemonkit: web: pid {nobodys} has no handler for it, so it would die; "
        "not sent (--force sends SIGHUP anyway)\n"
    )
    assert alive(nobodys)


def test_reload_refuses_an_ignored_signal_unless_forced_and_a_trap_gets_it(cli: Cli, tmp_path: Path) -> None:
    ignoring = 'trap "" HUP; exec "$0" 60'  # exec keeps the ignored disposition
    cli("start", "--name", "deaf", "--", "sh", "-c", ignoring, cli.sleep)
    pid = cli.pid("deaf")
    code, _, err = cli("reload", "deaf")
    assert (code, err) == (
        1,
        f"daemonkit: deaf: pid {pid} ignores it; not sent (--force sends SIGHUP anyway)\n",
    )
    code, out, _ = cli("reload", "deaf", "--force")
    assert (code, out) == (0, f"deaf: sent SIGHUP to pid {pid}\n") and alive(pid)

    flag, hups = tmp_path / "ready", tmp_path / "hups"
    trapping = write_script(
        tmp_path / "trap.py",
        "import signal, sys, time\n"
        "signal.signal(signal.SIGHUP, lambda s, f: open(sys.argv[1], 'a').write('hup\\n'))\n"
        "open(sys.argv[2], 'w').write('up')\n"
        "while True: time.sleep(1)\n",
    )
    code, _, err = cli(
        "start",
        "--name",
        "trap",
        "--wait-ready",
        f"file:{flag}",
        "--",
        sys.executable,
        trapping,
        str(hups),
        str(flag),
    )
    assert code == 0, err
    pid = int(cli.pidfile("trap").read_text())
    assert cli("reload", "trap") == (0, f"trap: sent SIGHUP to pid {pid}\n", "")
    wait_for(lambda: hups.exists() and hups.read_text() == "hup\n", what="the handler to run")
    assert alive(pid)


# ------------------------------- 11, 12: stop finishes, whatever the daemon does


DETACHING = """\
import os, signal, sys, time
marker = sys.argv[1]
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # inherited: every process needs SIGKILL

def detached(name, double):
    if os.fork() == 0:
        os.setsid()
        if double and os.fork():
            os._exit(0)
        with open(os.path.join(marker, name + ".tmp"), "w") as f:
            f.write(str(os.getpid()))
        os.rename(os.path.join(marker, name + ".tmp"), os.path.join(marker, name))
        while True:
            time.sleep(1)

detached("setsid", False)
detached("double", True)
while True:
    try:
        os.wait()
    except ChildProcessError:
        time.sleep(1)
"""


def _start_detaching(cli: Cli, tmp_path: Path) -> tuple[int, int, int]:
    """A daemon with a setsid() child and a double-forked grandchild, all
    ignoring SIGTERM and holding the inherited lock: their PIDs."""
    marker = tmp_path / "marker"
    marker.mkdir()
    daemon = write_script(tmp_path / "detaching.py", DETACHING)
    assert cli("start", "--name", "det", "--", sys.executable, daemon, str(marker))[0] == 0
    pid = int(cli.pidfile("det").read_text())

    def child(name: str) -> int:
        path = marker / name
        return int(wait_for(lambda: path.exists() and path.read_text(), what=f"the {name} child"))

    setsid, double = child("setsid"), child("double")
    for pgrp in (proc_stat(setsid)["pgrp"], proc_stat(double)["pgrp"]):
        assert pgrp != proc_stat(pid)["pgrp"]  # out of the daemon's group
    return pid, setsid, double


def test_stop_reaches_holders_that_left_the_group(cli: Cli, tmp_path: Path) -> None:
    pid, setsid, double = _start_detaching(cli, tmp_path)
    code, out, err = cli("stop", "det", "--timeout", "0.5")
    assert code == 0 and out.startswith(f"stopped det (pid {pid}) in ")
    assert err == "det: still running 0.5 s after SIGTERM; sending SIGKILL\n"
    assert not any(alive(p) for p in (pid, setsid, double))
    assert daemonkit.status(cli.pidfile("det")).state == "stopped"


def test_stop_fails_naming_a_holder_that_outlives_sigkill(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid, setsid, double = _start_detaching(cli, tmp_path)
    kill = Target.kill

    def stuck_in_the_kernel(target: Target) -> None:  # injected: SIGKILL does not take
        if target.pid != setsid:
            kill(target)

    monkeypatch.setattr(Target, "kill", stuck_in_the_kernel)
    code, out, err = cli("stop", "det", "--timeout", "0.5")
    assert (code, out) == (1, "")
    assert err.endswith(f"det: could not stop it: still holding the pidfile after SIGKILL: pid {setsid}\n")
    assert alive(setsid) and not alive(pid) and not alive(double)
    assert daemonkit.status(cli.pidfile("det")).holders == (setsid,)


SETSID_ON_TERM = """\
import os, signal, sys, time

def on_term(signum, frame):
    os.setsid()  # out of the group stop signals, and TERM otherwise ignored
    with open(sys.argv[1], "w") as f:
        f.write(str(os.getsid(0)))

signal.signal(signal.SIGTERM, on_term)
open(sys.argv[2], "w").write("up")
while True:
    time.sleep(1)
"""


def test_sigkill_reaches_a_daemon_that_calls_setsid_on_sigterm(cli: Cli, tmp_path: Path) -> None:
    moved, flag = tmp_path / "moved", tmp_path / "ready"
    daemon = write_script(tmp_path / "setsid_on_term.py", SETSID_ON_TERM)
    code, _, err = cli(
        "start",
        "--name",
        "slip",
        "--wait-ready",
        f"file:{flag}",
        "--",
        sys.executable,
        daemon,
        str(moved),
        str(flag),
    )
    assert code == 0, err
    pid = int(cli.pidfile("slip").read_text())
    code, out, err = cli("stop", "slip", "--timeout", "0.5")
    assert code == 0 and out.startswith(f"stopped slip (pid {pid}) in "), err
    assert moved.read_text() == str(pid)  # it did leave its session before SIGKILL
    assert not alive(pid)


@root_only
def test_sigkill_reaches_a_daemon_that_calls_setsid_on_sigterm_as_nobody(public: Path) -> None:
    moved, flag, pidfile = public / "run" / "moved", public / "run" / "ready", public / "run" / "slip.pid"
    daemon = write_script(public / "setsid_on_term.py", SETSID_ON_TERM)
    result = as_nobody(
        "start", "--name", "slip", "--pidfile", str(pidfile), "--wait-ready", f"file:{flag}",
        "--", SYSTEM_PYTHON, daemon, str(moved), str(flag),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    pid = int(pidfile.read_text())
    assert proc_status(pid)["Uid"].split()[0] == str(NOBODY)
    result = as_nobody("stop", "--pidfile", str(pidfile), "--timeout", "0.5")
    assert result.returncode == 0 and result.stdout.startswith(f"stopped slip (pid {pid}) in "), result.stderr
    assert moved.read_text() == str(pid) and not alive(pid)


# --------------------------------- 13: a daemon that did not detach


def _two_run_workers(cli: Cli, tmp_path: Path, then: str) -> tuple[subprocess.Popen[bytes], int, int, int]:
    """A script in its own session (as a terminal or ssh gives it) that
    starts two `daemonkit run` workers and a sibling, then runs ``then``;
    the script and the PIDs of the workers and of the sibling."""
    dk, sleep = shlex.join(cli_argv("run")), shlex.quote(cli.sleep)
    script = (
        f"{dk} --pidfile {tmp_path / 'one.pid'} -- {sleep} 101 & "
        f"{dk} --pidfile {tmp_path / 'two.pid'} -- {sleep} 102 & "
        f"{sleep} 103 & {then}"
    )
    shell = subprocess.Popen(["sh", "-c", script], env=cli_env(cli), start_new_session=True)
    try:
        w1 = wait_for(lambda: running_pid(tmp_path / "one.pid"), what="worker one")
        w2 = wait_for(lambda: running_pid(tmp_path / "two.pid"), what="worker two")

        def sleeps() -> set[int]:
            return {p for p in processes_mentioning(cli.sleep) if exe_of(p) == "/usr/bin/sleep"}

        three = wait_for(lambda: len(sleeps()) == 3 and sleeps(), what="two workers and a sibling")
        (sibling,) = three - {w1, w2}
        assert proc_stat(w1)["pgrp"] == proc_stat(w2)["pgrp"] == proc_stat(sibling)["pgrp"] == shell.pid
    except BaseException:
        os.killpg(shell.pid, signal.SIGKILL)
        shell.wait()
        raise
    return shell, w1, w2, sibling


def test_stop_of_one_run_worker_leaves_the_script_and_its_other_children(cli: Cli, tmp_path: Path) -> None:
    shell, w1, w2, sibling = _two_run_workers(cli, tmp_path, then="wait")
    try:
        code, out, err = cli("stop", "--pidfile", str(tmp_path / "one.pid"))
        assert code == 0 and out.startswith(f"stopped one (pid {w1}) in "), err
        assert not alive(w1)
        assert alive(w2) and alive(sibling) and alive(shell.pid)
    finally:
        os.killpg(shell.pid, signal.SIGKILL)
        shell.wait()


def test_stop_of_one_run_worker_leaves_the_other_after_the_script_exited(cli: Cli, tmp_path: Path) -> None:
    # The session's leader exits: what `ssh host script` or `setsid script`
    # leaves, and what daemonkit's own launch looks like.
    shell, w1, w2, sibling = _two_run_workers(cli, tmp_path, then="exit 0")
    assert shell.wait(timeout=10) == 0
    code, out, err = cli("stop", "--pidfile", str(tmp_path / "one.pid"))
    assert code == 0 and out.startswith(f"stopped one (pid {w1}) in "), err
    assert not alive(w1) and alive(w2) and alive(sibling)


# ------------------------------ 14: per-daemon stop and reload signals


POSTGRES_LIKE = """\
import os, signal, sys, time
marker = sys.argv[1]

def mark(name):
    with open(os.path.join(marker, name), "a") as f:
        f.write("x")

signal.signal(signal.SIGTERM, signal.SIG_IGN)  # like PostgreSQL: TERM would wait for clients
signal.signal(signal.SIGINT, lambda s, f: (mark("int"), sys.exit(0)))
signal.signal(signal.SIGUSR1, lambda s, f: mark("usr1"))
mark("ready")
while True:
    time.sleep(1)
"""


def test_stop_and_reload_signals_are_recorded_and_used(cli: Cli, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    marker.mkdir()
    daemon = write_script(tmp_path / "pg.py", POSTGRES_LIKE)
    controls = ["--stop-signal", "INT", "--stop-timeout", "3", "--reload-signal", "USR1"]
    code, _, err = cli(
        "start",
        "--name",
        "pg",
        *controls,
        "--wait-ready",
        f"file:{marker / 'ready'}",
        "--",
        sys.executable,
        daemon,
        str(marker),
    )
    assert code == 0, err
    first = int(cli.pidfile("pg").read_text())
    record = json.loads((cli.rundir / "pg.json").read_text())
    assert record["controls"] == {"stop_signal": "INT", "stop_timeout": 3.0, "reload_signal": "USR1"}

    assert cli("reload", "pg") == (0, f"pg: sent SIGUSR1 to pid {first}\n", "")
    wait_for(lambda: (marker / "usr1").exists(), what="USR1 to arrive")
    code, _, err = cli("reload", "pg", "--signal", "HUP")  # the command line wins over the record
    assert code == 1 and "has no handler for it, so it would die; not sent (--force sends SIGHUP" in err

    code, out, err = cli("restart", "pg")
    assert (code, err) == (0, "")
    second = int(cli.pidfile("pg").read_text())
    assert (marker / "int").read_text() == "x" and not alive(first)  # stopped by INT, no SIGKILL needed
    assert out.startswith(f"stopped pg (pid {first})") and f"started pg (pid {second})" in out
    assert json.loads((cli.rundir / "pg.json").read_text())["controls"] == record["controls"]

    code, out, err = cli("stop", "pg")
    assert (code, err) == (0, "") and out.startswith(f"stopped pg (pid {second})")
    assert (marker / "int").read_text() == "xx" and not alive(second)


def test_unit_carries_the_stop_and_reload_signals(cli: Cli, tmp_path: Path) -> None:
    code, out, err = cli(
        "unit",
        "pg",
        "--stop-signal",
        "INT",
        "--stop-timeout",
        "3",
        "--reload-signal",
        "USR1",
        "--",
        "sleep",
        "60",
    )
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert "KillSignal=SIGINT" in lines and "TimeoutStopSec=3" in lines
    assert "ExecReload=/bin/kill -USR1 $MAINPID" in lines
    unit = tmp_path / "pg.service"
    unit.write_text(out)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


# --------------------------------------- 16: restart from anywhere; old records


def test_restart_from_another_directory_uses_absolute_paths(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app_dir, elsewhere = tmp_path / "app", tmp_path / "elsewhere"
    app_dir.mkdir()
    elsewhere.mkdir()
    (app_dir / "app.js").write_text(NODE_APP)
    port = free_port()
    monkeypatch.chdir(app_dir)
    ready = ["--wait-ready", f"tcp:127.0.0.1:{port}"]
    code, _, err = cli(
        "start",
        "--name",
        "web",
        "--chdir",
        ".",
        "--log",
        "rel.log",
        *ready,
        "--",
        "node",
        "app.js",
        str(port),
    )
    assert code == 0, err
    first = int(cli.pidfile("web").read_text())
    spawn = json.loads((cli.rundir / "web.json").read_text())["spawn"]
    assert spawn["working_directory"] == str(app_dir)
    assert spawn["stdout"] == spawn["stderr"] == str(app_dir / "rel.log")

    monkeypatch.chdir(elsewhere)
    code, out, err = cli("restart", "web")
    assert (code, err) == (0, "")
    second = int(cli.pidfile("web").read_text())
    assert out.splitlines()[0] == f"stopped web (pid {first})"
    assert out.splitlines()[1].startswith(f"started web (pid {second}), ready in ")
    assert os.readlink(f"/proc/{second}/cwd") == str(app_dir)
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    wait_for(
        lambda: (app_dir / "rel.log").read_text().count("listening on") == 2, what="both runs in the log"
    )
    assert not (elsewhere / "rel.log").exists()


def test_a_record_from_an_older_version_is_refused_in_one_line(cli: Cli) -> None:
    cli.rundir.mkdir()
    (cli.rundir / "old.json").write_text(json.dumps({"name": "old", "command": [cli.sleep, "60"]}))
    code, out, err = cli("restart", "old")
    assert (code, out) == (1, "")
    assert err == (
        f"daemonkit: {cli.rundir / 'old.json'} was written by another version of daemonkit; "
        "start the daemon again with 'daemonkit start'\n"
    )
    assert not processes_mentioning(cli.sleep)
    assert cli("status", "old")[0] == 3  # shown as not running, without its unbelieved command


# ----------------------------------- 18: bad numbers before anything is signalled


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
@pytest.mark.parametrize(
    "command", [["stop", "nap", "--timeout"], ["restart", "nap", "--timeout"], ["start", "--stop-timeout"]]
)
def test_bad_durations_stop_nothing_and_start_nothing(
    cli: Cli, capsys: pytest.CaptureFixture[str], command: list[str], value: str
) -> None:
    assert cli("start", "--name", "nap", "--", cli.sleep, "60")[0] == 0
    pid = cli.pid("nap")
    tail = ["--", cli.sleep, "61"] if command[0] == "start" else []
    with pytest.raises(SystemExit) as info:
        cli(*command, value, *tail)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid duration" in err and "Traceback" not in err
    assert alive(pid) and cli.pid("nap") == pid  # not signalled, not restarted
    assert len(processes_mentioning(cli.sleep)) == 1  # nothing forked


# ----------------------------------------------- 19: run as a container's PID 1


@root_only
def test_run_with_a_pidfile_as_pid_1_is_refused_with_a_reason(tmp_path: Path) -> None:
    pidfile = tmp_path / "init.pid"
    result = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc",
         *cli_argv("run", "--pidfile", str(pidfile), "--", "sleep", "60")],
        capture_output=True, text=True, timeout=30, env=clean_env(PYTHONPATH=str(world_readable_copy())),
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr == (
        "daemonkit: --pidfile has no meaning for a container's PID 1: the runtime tracks it; drop it\n"
    )
    assert not pidfile.exists()


# ------------------------------------ 20: manual_ready and a child that exits


FORKING_DAEMON = """\
import atexit, os, sys, time
sys.path.insert(0, sys.argv[3])
import daemonkit

marker = sys.argv[1]
with daemonkit.daemonize(pidfile=sys.argv[2], manual_ready=True):
    child = os.fork()
    if child == 0:  # a helper that finishes before the daemon is ready
        atexit.register(lambda: open(os.path.join(marker, "child-atexit"), "w").write("x"))
        sys.exit(0)
    os.waitpid(child, 0)
    daemonkit.ready()
    while True:
        time.sleep(1)
"""


def test_a_forked_child_exiting_before_manual_ready_does_not_fail_the_start(tmp_path: Path) -> None:
    marker, pidfile = tmp_path / "marker", tmp_path / "forking.pid"
    marker.mkdir()
    daemon = write_script(tmp_path / "forking.py", FORKING_DAEMON)
    try:
        result = subprocess.run(
            [sys.executable, daemon, str(marker), str(pidfile), str(ROOT)],
            capture_output=True, text=True, timeout=30, env=clean_env(),
        )  # fmt: skip
        assert (result.returncode, result.stderr) == (0, "")
        assert (marker / "child-atexit").read_text() == "x"  # the child ran its atexit handlers
        state = daemonkit.status(pidfile)
        assert state.running and state.pid == int(pidfile.read_text())  # and kept the daemon's lock
    finally:
        kill_everything_under(tmp_path)


# ----------------------------------------------------------- 21: messages


def test_hints_carry_the_pidfile_they_were_found_by(cli: Cli, tmp_path: Path) -> None:
    sleeper = subprocess.Popen([cli.sleep, "60"])
    try:
        legacy = tmp_path / "legacy.pid"
        legacy.write_text(f"{sleeper.pid}\n")  # no lock: as python-daemon writes it
        code, _, err = cli("stop", "--pidfile", str(legacy))
        hint = f"'daemonkit stop --unlocked --pidfile {legacy}'"
        assert code == 1 and err.endswith(f"; stop it with {hint}\n") and alive(sleeper.pid)
        code, out, _ = cli(*shlex.split(hint.strip("'"))[1:])
        assert code == 0 and out.startswith(f"stopped legacy (pid {sleeper.pid})")
        sleeper.wait(timeout=10)
    finally:
        sleeper.kill()
        sleeper.wait()
    stale = tmp_path / "stale.pid"
    stale.write_text(f"{sleeper.pid}\n")
    code, out, _ = cli("status", "--pidfile", str(stale))
    assert code == 1 and f"'daemonkit stop --pidfile {stale}' removes it" in out
    assert cli("stop", "--pidfile", str(stale))[0] == 0 and not stale.exists()


@root_only
def test_without_runtime_dir_and_writable_home_the_error_names_the_directory(public: Path) -> None:
    home = public  # root's, 0755: nobody cannot create ~/.local there
    result = as_nobody("start", "--", "/bin/sleep", "60", HOME=str(home))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        f"daemonkit: cannot create {home}/.local/state/daemonkit: Permission denied; "
        "set DAEMONKIT_RUNDIR to a writable directory, or give --pidfile\n"
    )
    assert not (home / ".local").exists()


def test_log_tail_after_a_failed_start_shows_only_this_run(cli: Cli) -> None:
    failing = 'echo "$0 says goodbye"; exit 3'
    code, _, err = cli("start", "--name", "flaky", "--", "sh", "-c", failing, "first-run")
    assert code == 3 and "first-run says goodbye" in err
    code, _, err = cli("start", "--name", "flaky", "--", "sh", "-c", failing, "second-run")
    assert code == 3
    assert err.splitlines()[1:] == [
        f"last lines of {cli.rundir / 'flaky.log'}:",
        "  | second-run says goodbye",
    ]


def test_list_and_status_quote_the_command_and_json_has_numbers(cli: Cli) -> None:
    command = ["sh", "-c", 'exec "$1" 60', "two words", cli.sleep]
    assert cli("start", "--name", "quoted", "--", *command)[0] == 0
    pid = cli.pid("quoted")
    shown = shlex.join(command)
    code, out, _ = cli("status", "quoted")
    assert code == 0 and f"  command  {shown}\n" in out
    code, out, _ = cli("list")
    assert out.splitlines()[1].endswith(shown)
    info = json.loads(cli("status", "quoted", "--json")[1])
    assert info["pid"] == pid and type(info["pid"]) is int
    assert isinstance(info["uptime"], (int, float)) and info["uptime"] >= 0
    assert isinstance(info["started"], (int, float)) and info["command"] == command
    row = json.loads(cli("list", "--json")[1])[0]
    assert type(row["pid"]) is int and isinstance(row["uptime"], (int, float))


# ------------------------------------------------------------- 22: forget


def test_forget_removes_a_stopped_daemons_record_and_refuses_a_running_one(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("start", "--name", "nap", "--", cli.sleep, "60")[0] == 0
    pid = cli.pid("nap")
    record = cli.rundir / "nap.json"
    code = cli("forget", "nap")[0]
    assert code != 0 and alive(pid) and record.exists()
    assert cli("stop", "nap")[0] == 0
    assert cli("list")[1].splitlines()[1].split()[:3] == ["nap", "-", "stopped"]
    assert cli("forget", "nap") == (0, "forgot nap\n", "")
    assert not record.exists()
    assert cli("list")[1] == f"no daemons in {cli.rundir}\n"
    code, _, err = cli("forget", "nap")
    assert code == 1 and "nothing to forget" in err


# ---------------------------------------------------------- fd readiness


def test_wait_ready_fd(cli: Cli) -> None:
    saying = 'echo READY >&"$DAEMONKIT_READY_FD"; exec "$0" 60'  # dash takes fds 0-9 only
    code, out, err = cli("start", "--name", "fd", "--wait-ready", "fd", "--", "bash", "-c", saying, cli.sleep)
    assert (code, err) == (0, "")
    assert out.startswith(f"started fd (pid {cli.pid('fd')})")
    silent = 'exec "$0" 60'
    code, out, err = cli(
        "start",
        "--name",
        "mute",
        "--wait-ready",
        "fd",
        "--timeout",
        "0.5",
        "--",
        "sh",
        "-c",
        silent,
        cli.sleep,
    )
    assert (code, out) == (1, "")
    assert err == "daemonkit: mute: not ready after 0.5 s (waiting for fd); stopped it\n"
