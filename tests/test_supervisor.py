"""``start --restart``: the per-app supervisor, with real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support import (
    ROOT,
    Cli,
    alive,
    clean_env,
    kill_everything_under,
    proc_status,
    processes_mentioning,
    root_only,
    signal_set,
    wait_for,
)


def script(tmp_path: Path, name: str, body: str) -> str:
    """A Python app in tmp_path (so that cleanup finds it by its path)."""
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return str(path)


def state(cli: Cli, name: str) -> dict[str, Any]:
    try:
        return dict(json.loads((cli.rundir / f"{name}.state").read_text()))
    except (FileNotFoundError, ValueError):  # not yet, or mid-replace on a slow reader
        return {}


def status(cli: Cli, name: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = cli("status", "--json", name)
    return code, dict(json.loads(out))


def running_app(cli: Cli, name: str, not_pid: object = None) -> int:
    def app() -> int | None:
        s = state(cli, name)
        pid = s.get("main_pid")
        return pid if s.get("state") == "running" and pid != not_pid else None

    return int(wait_for(app, what=f"{name}'s app to run"))


def gone(pid: int) -> bool:
    return not alive(pid)


NOTIFY_APP = f"""
import sys, time
sys.path.insert(0, {str(ROOT)!r})
import daemonkit.systemd
daemonkit.systemd.notify("READY=1", status="serving 3 clients")
while True:
    time.sleep(60)
"""


def test_kill_9_app_comes_back_and_is_counted(cli: Cli) -> None:
    code, out, err = cli("start", "--restart", "on-failure", "--name", "app", "--", cli.sleep, "60")
    assert code == 0, err
    first = running_app(cli, "app")
    assert f"app pid {first}, restart on-failure" in out
    supervisor = int(cli.pidfile("app").read_text())
    assert supervisor != first and os.getpgid(first) == first  # its own process group
    os.kill(first, signal.SIGKILL)
    second = running_app(cli, "app", not_pid=first)
    code, info = status(cli, "app")
    assert code == 0 and info["state"] == "running" and info["pid"] == supervisor
    assert info["main_pid"] == second and info["restarts"] == 1
    assert info["last_exit"]["signal"] == "SIGKILL" and isinstance(info["uptime"], float)
    code, out, _ = cli("status", "app")
    assert "1 restart" in out and "killed by SIGKILL" in out
    # The app holds neither the pidfile's lock nor the readiness pipe.
    fds = {os.readlink(f"/proc/{second}/fd/{fd}") for fd in os.listdir(f"/proc/{second}/fd")}
    assert str(cli.pidfile("app")) not in fds and len(fds) <= 3
    # Nothing ignored or blocked (Python ignores SIGPIPE and SIGXFSZ; exec keeps that).
    assert signal_set(proc_status(second)["SigIgn"]) == set()
    assert signal_set(proc_status(second)["SigBlk"]) == set()


def test_on_failure_with_exit_0_does_not_restart(cli: Cli, tmp_path: Path) -> None:
    flag = tmp_path / "go"
    body = f"import os, time\nwhile not os.path.exists({str(flag)!r}):\n    time.sleep(0.01)\n"
    app = script(tmp_path, "once", body)
    assert cli("start", "--restart", "on-failure", "--name", "once", "--", app)[0] == 0
    supervisor = int(cli.pidfile("once").read_text())
    flag.touch()
    wait_for(lambda: gone(supervisor), what="the supervisor to exit")
    code, info = status(cli, "once")
    assert code == 3 and info["state"] == "stopped"
    assert info["restarts"] == 0 and info["last_exit"]["code"] == 0
    assert not cli.pidfile("once").exists()


def test_crash_loop_is_fatal_after_the_burst_and_start_name_revives_it(cli: Cli, tmp_path: Path) -> None:
    crash = tmp_path / "crash"
    crash.touch()
    app = script(
        tmp_path,
        "loop",
        f"import os, sys, time\ntime.sleep(0.05)\nif os.path.exists({str(crash)!r}):\n"
        "    sys.exit(1)\ntime.sleep(60)\n",
    )
    options = ["--restart-sec", "10ms", "--restart-max-delay", "40ms", "--start-limit-burst", "3"]
    assert cli("start", "--restart", "on-failure", *options, "--name", "loop", "--", app)[0] == 0
    supervisor = int(cli.pidfile("loop").read_text())
    wait_for(lambda: gone(supervisor), what="the supervisor to give up")
    code, info = status(cli, "loop")
    assert code == 1 and info["state"] == "fatal" and info["restarts"] == 2
    assert info["last_exit"]["code"] == 1
    assert "fatal" in cli("status", "loop")[1]
    crash.unlink()
    code, out, err = cli("start", "loop")  # the record's command, options and all
    assert code == 0, err
    running_app(cli, "loop")
    assert int(cli.pidfile("loop").read_text()) != supervisor
    assert status(cli, "loop")[1]["restarts"] == 0


def test_a_setsid_grandchild_is_stopped_with_the_app(cli: Cli, tmp_path: Path) -> None:
    app = script(
        tmp_path,
        "forker",
        f"import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        f"        os.execv({cli.sleep!r}, [{cli.sleep!r}, '300'])\n    os._exit(0)\ntime.sleep(300)\n",
    )
    assert cli("start", "--restart", "always", "--name", "forker", "--", app)[0] == 0
    supervisor = int(cli.pidfile("forker").read_text())
    app_pid = running_app(cli, "forker")
    grandchild = wait_for(lambda: processes_mentioning(cli.sleep), what="the grandchild")[0]
    assert os.getsid(grandchild) != os.getsid(app_pid)  # out of the app's session and group
    wait_for(lambda: _ppid(grandchild) == supervisor, what="the orphan to be adopted")
    assert status(cli, "forker")[1]["others"] == [grandchild]
    assert f"others   {grandchild}" in cli("status", "forker")[1]
    code, out, err = cli("stop", "forker")
    assert code == 0, err
    assert gone(grandchild) and gone(supervisor)
    assert processes_mentioning(str(tmp_path)) == []
    assert status(cli, "forker")[1]["state"] == "stopped"


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_logs_survive_restarts_in_order(cli: Cli, tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    app = script(
        tmp_path,
        "writer",
        f"import sys\np = {str(counter)!r}\n"
        "try:\n    run = int(open(p).read())\nexcept FileNotFoundError:\n    run = 0\n"
        "open(p, 'w').write(str(run + 1))\n"
        "for i in range(200):\n    print(f'run {run} line {i}', file=sys.stderr if i % 2 else sys.stdout)\n"
        "sys.stdout.flush()\nif run < 3:\n    sys.exit(0)\n__import__('time').sleep(60)\n",
    )
    assert cli("start", "--restart", "always", "--restart-sec", "1ms", "--name", "writer", "--", app)[0] == 0
    wait_for(lambda: state(cli, "writer").get("restarts") == 3, what="three restarts")
    running_app(cli, "writer")
    log = cli.rundir / "writer.log"
    expected = [f"run {run} line {i}" for run in range(4) for i in range(200)]
    wait_for(lambda: len(log.read_text().splitlines()) >= len(expected), what="the last run's output")
    assert cli("stop", "writer")[0] == 0
    assert log.read_text().splitlines() == expected


def test_the_watchdog_kills_and_restarts_a_hung_app(cli: Cli, tmp_path: Path) -> None:
    app = script(tmp_path, "hung", NOTIFY_APP)  # READY=1, then never WATCHDOG=1
    code, _, err = cli(
        "start",
        "--restart",
        "on-failure",
        "--wait-ready",
        "notify",
        "--watchdog-sec",
        "300ms",
        "--env",
        f"PYTHONPATH={ROOT}",
        "--name",
        "hung",
        "--",
        app,
    )
    assert code == 0, err
    first = running_app(cli, "hung")
    assert _environ(first)["WATCHDOG_USEC"] == "300000" and _environ(first)["WATCHDOG_PID"] == str(first)
    running_app(cli, "hung", not_pid=first)
    last = status(cli, "hung")[1]["last_exit"]
    assert last["signal"] == "SIGABRT" and last["watchdog"] is True
    assert cli("stop", "hung")[0] == 0  # which also removes the notify socket


def _environ(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        pairs = [item.decode().partition("=") for item in f.read().split(b"\0") if item]
    return {key: value for key, _, value in pairs}


def test_status_text_shows_in_status_and_the_socket_outlives_ready(cli: Cli, tmp_path: Path) -> None:
    app = script(tmp_path, "notifier", NOTIFY_APP)
    code, _, err = cli("start", "--restart", "always", "--wait-ready", "notify", "--name", "n", "--", app)
    assert code == 0, err
    pid = running_app(cli, "n")
    wait_for(lambda: state(cli, "n").get("status_text") == "serving 3 clients", what="STATUS=")
    assert "status   serving 3 clients" in cli("status", "n")[1]
    assert status(cli, "n")[1]["status_text"] == "serving 3 clients"
    socket_path = _environ(pid)["NOTIFY_SOCKET"]
    assert os.path.exists(socket_path)  # kept for the app's life
    assert cli("stop", "n")[0] == 0
    assert not os.path.exists(os.path.dirname(socket_path))


def test_without_restart_no_daemonkit_process_stays(cli: Cli, tmp_path: Path) -> None:
    assert cli("start", "--name", "plain", "--", cli.sleep, "60")[0] == 0
    pid = cli.pid("plain")
    assert processes_mentioning(str(cli.rundir)) == []  # a supervisor would name its pidfile
    code, info = status(cli, "plain")
    assert info["main_pid"] == pid and info["restarts"] == 0 and info["last_exit"] is None
    assert not (cli.rundir / "plain.state").exists()


SIGNAL_APP = """
import signal, sys, time
def note(sig, frame):
    print(f"got {signal.Signals(sig).name}", flush=True)
signal.signal(signal.SIGHUP, note)
signal.signal(signal.SIGUSR1, note)
print("up", flush=True)
while True:
    time.sleep(60)
"""


def test_signals_sent_by_hand_to_the_supervisor(cli: Cli, tmp_path: Path) -> None:
    app = script(tmp_path, "sig", SIGNAL_APP)
    assert cli("start", "--restart", "on-failure", "--name", "sig", "--", app)[0] == 0
    supervisor = int(cli.pidfile("sig").read_text())
    pid = running_app(cli, "sig")
    log = cli.rundir / "sig.log"
    wait_for(lambda: "up" in log.read_text(), what="the app to start")
    os.kill(supervisor, signal.SIGHUP)  # reload: the app catches HUP
    wait_for(lambda: "got SIGHUP" in log.read_text(), what="HUP to reach the app")
    wait_for(lambda: state(cli, "sig").get("reloads") == 1, what="the reload to be recorded")
    os.kill(supervisor, signal.SIGUSR1)  # passed on
    wait_for(lambda: "got SIGUSR1" in log.read_text(), what="USR1 to reach the app")
    assert state(cli, "sig")["main_pid"] == pid and state(cli, "sig")["restarts"] == 0
    code, out, _ = cli("reload", "sig")
    assert code == 0 and "sent" in out
    os.kill(supervisor, signal.SIGTERM)  # stop, as `stop` does
    wait_for(lambda: gone(supervisor), what="the supervisor to exit")
    assert gone(pid) and not cli.pidfile("sig").exists()
    assert state(cli, "sig")["state"] == "stopped"


def test_hup_is_refused_when_the_app_would_die_of_it(cli: Cli) -> None:
    assert cli("start", "--restart", "on-failure", "--name", "deaf", "--", cli.sleep, "60")[0] == 0
    pid = running_app(cli, "deaf")
    code, _, err = cli("reload", "deaf")
    assert code == 1 and "does not catch SIGHUP" in err
    assert alive(pid) and state(cli, "deaf")["restarts"] == 0
    assert "reload refused" in (cli.rundir / "deaf.log").read_text()


def test_restart_and_rotate_go_through_the_supervisor(cli: Cli, tmp_path: Path) -> None:
    app = script(tmp_path, "rot", SIGNAL_APP)
    assert cli("start", "--restart", "on-failure", "--name", "rot", "--", app)[0] == 0
    supervisor = int(cli.pidfile("rot").read_text())
    first = running_app(cli, "rot")
    log = cli.rundir / "rot.log"
    wait_for(lambda: "up" in log.read_text(), what="the first run's output")
    code, out, err = cli("restart", "rot")
    assert code == 0, err
    second = running_app(cli, "rot", not_pid=first)
    assert int(cli.pidfile("rot").read_text()) == supervisor and gone(first)
    wait_for(lambda: log.read_text().count("up") == 2, what="the second run's output")
    assert cli("rotate", "rot")[0] == 0
    assert (cli.rundir / "rot.log.1").read_text().count("up") == 2
    os.kill(supervisor, signal.SIGUSR1)
    wait_for(lambda: "got SIGUSR1" in log.read_text(), what="output in the new file")
    assert alive(second)


def test_restart_is_refused_under_a_service_manager(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVOCATION_ID", "0123")
    code, _, err = cli("start", "--restart", "always", "--name", "x", "--", cli.sleep, "60")
    assert code == 2 and "Restart=" in err
    assert not cli.pidfile("x").exists()


def test_unit_uses_systemd_restart(cli: Cli) -> None:
    code, out, _ = cli("unit", "--restart", "on-failure", "--restart-sec", "2s", "web", "--", "/bin/true")
    assert code == 0 and "Restart=on-failure\nRestartSec=2s\n" in out
    assert out.count("Restart=") == 1 and "supervision" not in out


@root_only
def test_the_app_drops_privileges_and_the_supervisor_does_not(cli: Cli) -> None:
    code, _, err = cli(
        "start", "--restart", "on-failure", "--user", "nobody", "--name", "low", "--", "/bin/sleep", "61"
    )
    assert code == 0, err
    try:
        supervisor = int(cli.pidfile("low").read_text())
        app = running_app(cli, "low")
        with open(f"/proc/{app}/status") as f:
            uid_line = next(line for line in f if line.startswith("Uid:"))
        assert uid_line.split()[1:] == ["65534"] * 4
        with open(f"/proc/{supervisor}/status") as f:
            assert next(line for line in f if line.startswith("Uid:")).split()[1] == "0"
    finally:
        assert cli("stop", "low")[0] == 0


def test_a_first_run_that_fails_is_reported_and_leaves_nothing(cli: Cli, tmp_path: Path) -> None:
    app = script(tmp_path, "bad", "import sys\nprint('no config', file=sys.stderr)\nsys.exit(4)\n")
    code, _, err = cli(
        "start", "--restart", "on-failure", "--wait-ready", "file:/nonexistent", "--name", "bad", "--", app
    )
    assert code == 4 and "exited with status 4 before it was ready" in err and "no config" in err
    assert not cli.pidfile("bad").exists()
    assert processes_mentioning(str(tmp_path)) == []


def test_a_first_run_never_ready_is_stopped_at_the_timeout(cli: Cli, tmp_path: Path) -> None:
    app = script(tmp_path, "slow", "import time\ntime.sleep(60)\n")
    code, _, err = cli(
        "start",
        "--restart",
        "always",
        "--wait-ready",
        f"file:{tmp_path}/never",
        "--timeout",
        "0.5",
        "--name",
        "slow",
        "--",
        app,
    )
    assert code == 1 and "not ready after 0.5 s" in err
    wait_for(lambda: processes_mentioning(str(tmp_path)) == [], what="everything to stop")
    assert not cli.pidfile("slow").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--restart", "sometimes"], "invalid --restart 'sometimes'"),
        (["--restart", "always", "--restart-sec", "soon"], "invalid duration 'soon'"),
        (["--restart", "always", "--log-max-size", "big"], "invalid size 'big'"),
        (["--restart", "always", "--stdout", "x.log"], "use --log FILE"),
    ],
)
def test_bad_supervisor_options_are_one_line(cli: Cli, argv: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "daemonkit", "start", *argv, "--name", "x", "--", cli.sleep, "60"],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(PYTHONPATH=str(ROOT), DAEMONKIT_RUNDIR=str(cli.rundir)),
    )
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not cli.pidfile("x").exists()


def test_a_missing_command_fails_before_anything_starts(cli: Cli) -> None:
    code, _, err = cli("start", "--restart", "always", "--name", "x", "--", "no-such-command-here")
    assert code == 127 and "command not found" in err
    assert not cli.pidfile("x").exists()


def test_without_a_subreaper_the_fallback_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from daemonkit import _posix

    monkeypatch.setattr(_posix, "HAS_SUBREAPER", False)
    assert _posix.become_subreaper() is False
    assert os.getpid() in _posix.children_of(os.getppid())


def test_durations_and_sizes() -> None:
    from daemonkit.cli.common import UsageError
    from daemonkit.cli.parse import duration, size

    assert [duration(t) for t in ("100ms", "1s", "2m", "1h", "0.5", "0")] == [0.1, 1.0, 120.0, 3600.0, 0.5, 0]
    assert [size(t) for t in ("10M", "512K", "1G", "100")] == [10 << 20, 512 << 10, 1 << 30, 100]
    for bad in ("", "soon", "-1s", "infs", "nan"):
        with pytest.raises(UsageError):
            duration(bad)


def test_the_record_encoder_writes_json() -> None:
    from daemonkit.supervisor import encode

    value = {"a": None, "b": True, "c": 1.5, "d": 'q"\\\n\x00é', "e": [1, {"f": False}], "g": 10**20}
    assert json.loads(encode(value)) == value


@root_only
def test_a_full_disk_blocks_the_app_and_loses_nothing(cli: Cli, tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], check=True)
    try:
        app = script(
            tmp_path,
            "chatty",
            "import sys\nfor i in range(40000):\n    sys.stdout.write(f'line {i:06d}\\n')\n"
            "sys.stdout.flush()\n__import__('time').sleep(60)\n",
        )
        log = disk / "chatty.log"  # 480 kB of lines into 256 kB
        code, _, err = cli(
            "start", "--restart", "on-failure", "--log", str(log), "--name", "chatty", "--", app
        )
        assert code == 0, err
        wait_for(lambda: state(cli, "chatty").get("log_disk_full"), what="the disk to be full")
        assert "log: disk full" in cli("status", "chatty")[1]
        app_pid = state(cli, "chatty")["main_pid"]
        if os.uname().machine == "x86_64":  # blocked in write(2), syscall number 1 there
            syscall = Path(f"/proc/{app_pid}/syscall")
            wait_for(lambda: syscall.read_text().split()[0] == "1", what="the app to block on its pipe")
        assert state(cli, "chatty")["restarts"] == 0
        subprocess.run(["mount", "-o", "remount,size=1m", str(disk)], check=True)
        wait_for(lambda: log.read_bytes().endswith(b"line 039999\n"), what="every line, once space returned")
        assert not state(cli, "chatty")["log_disk_full"] or wait_for(
            lambda: not state(cli, "chatty")["log_disk_full"], what="disk full to clear"
        )
        assert log.read_text().splitlines() == [f"line {i:06d}" for i in range(40000)]
        assert cli("stop", "chatty")[0] == 0
    finally:
        kill_everything_under(tmp_path)
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_rotation_under_a_fast_writer_keeps_every_line_once(cli: Cli, tmp_path: Path) -> None:
    app = script(
        tmp_path,
        "fast",
        "import sys\nfor i in range(50000):\n    sys.stdout.write(f'line {i:06d}\\n')\n"
        "sys.stdout.flush()\n__import__('time').sleep(60)\n",
    )
    options = ["--log-max-size", "64K", "--log-keep", "100"]
    assert cli("start", "--restart", "on-failure", *options, "--name", "fast", "--", app)[0] == 0
    log = cli.rundir / "fast.log"
    wait_for(lambda: _tail(log).endswith(b"line 049999\n"), what="the last line")
    archives = sorted(cli.rundir.glob("fast.log.*"), key=lambda p: -int(p.suffix[1:]))
    assert len(archives) >= 5
    lines = [line for path in [*archives, log] for line in path.read_text().splitlines()]
    assert lines == [f"line {i:06d}" for i in range(50000)]


def _tail(path: Path) -> bytes:
    try:
        return path.read_bytes()[-64:]
    except FileNotFoundError:  # between a rotation's rename and its reopen
        return b""


def test_rotate_reopens_a_log_moved_away(cli: Cli, tmp_path: Path) -> None:
    app = script(tmp_path, "mv", SIGNAL_APP)
    assert cli("start", "--restart", "on-failure", "--name", "mv", "--", app)[0] == 0
    supervisor = int(cli.pidfile("mv").read_text())
    log = cli.rundir / "mv.log"
    wait_for(lambda: "up" in log.read_text(), what="the app to start")
    moved = cli.rundir / "mv.log-20261202"
    log.rename(moved)  # logrotate's create mode
    assert cli("rotate", "mv")[0] == 0
    os.kill(supervisor, signal.SIGUSR1)
    wait_for(lambda: log.exists() and "got SIGUSR1" in log.read_text(), what="output in the reopened file")
    assert moved.read_text() == "up\n" and not (cli.rundir / "mv.log.1").exists()


def test_wait_ready_file_for_every_run(cli: Cli, tmp_path: Path) -> None:
    marker = tmp_path / "ready"
    app = script(
        tmp_path,
        "marker",
        f"import os, time\ntime.sleep(0.2)\nopen({str(marker)!r}, 'w').close()\ntime.sleep(60)\n",
    )
    code, out, err = cli(
        "start", "--restart", "always", "--wait-ready", f"file:{marker}", "--name", "m", "--", app
    )
    assert code == 0, err
    assert marker.exists() and state(cli, "m")["state"] == "running"


STOPPING_APP = """
import signal, sys, time
sys.path.insert(0, {root!r})
import daemonkit.systemd
def term(sig, frame):
    daemonkit.systemd.notify("STOPPING=1", "EXTEND_TIMEOUT_USEC=5000000")
    time.sleep(0.5)
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
daemonkit.systemd.notify("READY=1")
while True:
    time.sleep(60)
"""


def test_extend_timeout_usec_during_stop(cli: Cli, tmp_path: Path) -> None:
    app = script(tmp_path, "slowstop", STOPPING_APP.format(root=str(ROOT)))
    options = ["--wait-ready", "notify", "--stop-timeout", "200ms"]
    assert cli("start", "--restart", "on-failure", *options, "--name", "ss", "--", app)[0] == 0
    running_app(cli, "ss")
    assert cli("stop", "ss")[0] == 0
    assert state(cli, "ss")["last_exit"]["code"] == 0  # not SIGKILLed at 200 ms


def test_an_app_ignoring_the_stop_signal_is_killed_after_the_stop_timeout(cli: Cli, tmp_path: Path) -> None:
    app = script(tmp_path, "stubborn", "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                 "print('up', flush=True)\ntime.sleep(60)\n")  # fmt: skip
    assert cli("start", "--restart", "always", "--stop-timeout", "200ms", "--name", "st", "--", app)[0] == 0
    pid = running_app(cli, "st")
    wait_for(lambda: "up" in (cli.rundir / "st.log").read_text(), what="the handler to be set")
    assert cli("stop", "st")[0] == 0
    assert gone(pid) and state(cli, "st")["last_exit"]["signal"] == "SIGKILL"


def test_list_shows_restarts_cpu_and_memory(cli: Cli) -> None:
    assert cli("start", "--restart", "always", "--name", "sup", "--", cli.sleep, "60")[0] == 0
    assert cli("start", "--name", "plain", "--", cli.sleep, "61")[0] == 0
    first = running_app(cli, "sup")
    os.kill(first, signal.SIGKILL)
    running_app(cli, "sup", not_pid=first)
    code, out, _ = cli("list")
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    supervisor = int(cli.pidfile("sup").read_text())
    assert rows["sup"][:4] == ["sup", str(supervisor), "running", "1"]
    assert rows["plain"][:4] == ["plain", str(cli.pid("plain")), "running", "0"]
    assert rows["sup"][6].endswith("M") and rows["plain"][6].endswith("M")
    listed = {r["name"]: r for r in json.loads(cli("list", "--json")[1])}
    assert listed["sup"]["restarts"] == 1 and listed["sup"]["main_pid"] != supervisor
    assert listed["plain"]["main_pid"] == listed["plain"]["pid"] and listed["sup"]["mem"] > 0


def test_log_timestamps_and_a_custom_stop_signal(cli: Cli, tmp_path: Path) -> None:
    app = script(
        tmp_path,
        "stamped",
        "import signal, sys, time\n"
        "signal.signal(signal.SIGINT, lambda s, f: (print('got INT', flush=True), sys.exit(0)))\n"
        "sys.stdout.write('one\\ntw'); sys.stdout.flush(); time.sleep(0.1)\n"
        "sys.stdout.write('o\\n'); sys.stdout.flush()\ntime.sleep(60)\n",
    )
    options = ["--log-timestamps", "iso", "--stop-signal", "INT"]
    assert cli("start", "--restart", "on-failure", *options, "--name", "ts", "--", app)[0] == 0
    log = cli.rundir / "ts.log"
    wait_for(lambda: log.read_text().count("\n") == 2, what="two lines")
    assert cli("stop", "ts")[0] == 0
    lines = log.read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["one", "two", "got INT"]
    assert all(line[:4].isdigit() and line[10] == "T" for line in lines)
    assert state(cli, "ts")["last_exit"]["code"] == 0


RELOADING_APP = """
import signal, sys, time
sys.path.insert(0, {root!r})
import daemonkit.systemd
def hup(sig, frame):
    daemonkit.systemd.notify("RELOADING=1")
    time.sleep(0.05)
    daemonkit.systemd.notify("READY=1", status="config v2")
signal.signal(signal.SIGHUP, hup)
daemonkit.systemd.notify("READY=1", status="config v1")
while True:
    time.sleep(60)
"""


def test_reload_waits_for_reloading_then_ready(cli: Cli, tmp_path: Path) -> None:
    app = script(tmp_path, "reloader", RELOADING_APP.format(root=str(ROOT)))
    options = ["--restart", "on-failure", "--wait-ready", "notify"]
    assert cli("start", *options, "--name", "rl", "--", app)[0] == 0
    wait_for(lambda: state(cli, "rl").get("status_text") == "config v1", what="the first STATUS=")
    code, out, err = cli("reload", "rl")
    assert code == 0, err
    assert out.startswith("rl: reloaded (SIGHUP) in ") and out.endswith(" ms\n")
    reply = state(cli, "rl")["last_reload"]
    assert reply["result"] == "reloaded" and reply["seconds"] > 0
    assert state(cli, "rl")["status_text"] == "config v2"
    assert cli("stop", "rl")[0] == 0


def test_reload_options_the_supervisor_cannot_honour_are_refused(cli: Cli, tmp_path: Path) -> None:
    app = script(tmp_path, "calm", "import time\nwhile True:\n    time.sleep(1)\n")
    assert cli("start", "--restart", "on-failure", "--name", "calm", "--", app)[0] == 0
    code, _, err = cli("reload", "--signal", "USR1", "calm")
    assert code == 2 and "calm runs under a supervisor" in err.splitlines()[-1]
    assert cli("stop", "calm")[0] == 0
