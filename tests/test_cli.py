"""The daemonkit command line, driving real commands."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support import (
    Cli,
    alive,
    clean_env,
    daemonkit_as_nobody,
    each_posix_path,
    free_port,
    holder_pid,
    kill_everything_under,
    posix_paths,
    proc_fds,
    proc_stat,
    proc_status,
    root_only,
    signal_set,
    wait_for,
)


@each_posix_path
def test_start_status_stop(cli: Cli) -> None:
    code, out, err = cli("start", "--name", "nap", "--", cli.sleep, "60")
    assert (code, err) == (0, "")
    pid = cli.pid("nap")
    assert out.startswith(f"started nap (pid {pid}), ready in ") and out.endswith(" ms\n")
    assert cli.pidfile("nap").read_text() == f"{pid}\n"
    # The command itself is the daemon: no daemonkit process beside it.
    assert os.readlink(f"/proc/{pid}/exe") == "/usr/bin/sleep"
    info = proc_stat(pid)
    assert info["ppid"] != os.getpid() and info["sid"] != pid and info["tty_nr"] == 0
    assert proc_status(pid)["Umask"] == "0022"
    assert os.readlink(f"/proc/{pid}/cwd") == os.getcwd()
    log = str(cli.rundir / "nap.log")
    expected = sorted(["/dev/null", log, log, str(cli.pidfile("nap"))])
    wait_for(lambda: sorted(proc_fds(pid).values()) == expected, what=f"fds {expected}")
    # exec'ed programs start with default dispositions and an empty mask.
    assert signal_set(proc_status(pid)["SigIgn"]) == set()
    assert signal_set(proc_status(pid)["SigBlk"]) == set()
    record = json.loads((cli.rundir / "nap.json").read_text())
    assert record["command"] == [cli.sleep, "60"] and record["pid"] == pid

    code, out, _ = cli("status", "nap")
    assert code == 0 and out.startswith(f"nap: running (pid {pid}), up ")
    assert f"command  {cli.sleep} 60" in out
    code, out, _ = cli("status", "nap", "--json")
    assert code == 0 and json.loads(out)["pid"] == pid

    code, out, _ = cli("stop", "nap")
    assert code == 0 and out.startswith(f"stopped nap (pid {pid}) in ")
    assert not alive(pid)
    assert not cli.pidfile("nap").exists()
    code, out, _ = cli("status", "nap")
    assert code == 3 and out.startswith("nap: not running\n")
    code, out, _ = cli("stop", "nap")
    assert (code, out) == (0, "nap: not running\n")


def test_start_gives_the_caller_its_hangup_handler_back(cli: Cli) -> None:
    # main() may run inside a longer-lived process: SIGHUP, ignored while a
    # start completes, must not stay ignored for the programs it runs later.
    def caller_handler(signum: int, frame: object) -> None:
        pass

    previous = signal.signal(signal.SIGHUP, caller_handler)
    try:
        assert cli("start", "--name", "nap", "--", cli.sleep, "60")[0] == 0
        assert signal.getsignal(signal.SIGHUP) is caller_handler
        assert cli("start", "--name", "nap", "--", cli.sleep, "60")[0] == 1  # already running
        assert signal.getsignal(signal.SIGHUP) is caller_handler
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_rundir_is_created_private(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not cli.rundir.exists()
    assert cli("start", "--", cli.sleep, "60")[0] == 0
    mode = stat.S_IMODE(os.stat(cli.rundir).st_mode)
    assert mode == (0o755 if os.geteuid() == 0 else 0o700)


def test_options_reach_the_command(cli: Cli, tmp_path: Path) -> None:
    code, _, err = cli(
        "start",
        "--name",
        "opts",
        "--umask",
        "027",
        "--chdir",
        str(tmp_path),
        "--env",
        "GREETING=hi",
        "--clear-env",
        "--log",
        str(tmp_path / "opts.log"),
        "--",
        cli.sleep,
        "60",
    )
    assert code == 0, err
    pid = cli.pid("opts")
    assert proc_status(pid)["Umask"] == "0027"
    assert os.readlink(f"/proc/{pid}/cwd") == str(tmp_path)
    with open(f"/proc/{pid}/environ", "rb") as f:
        assert f.read() == b"GREETING=hi\0"
    assert proc_fds(pid)[1] == str(tmp_path / "opts.log")


def test_already_running(cli: Cli) -> None:
    cli("start", "--name", "nap", "--", cli.sleep, "60")
    pid = cli.pid("nap")
    code, out, err = cli("start", "--name", "nap", "--", cli.sleep, "60")
    assert (code, out) == (1, "")
    assert f"nap: already running (pid {pid})" in err
    assert cli.pid("nap") == pid


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["start", "--name", "web", "--wait-ready", "tcp:127.0.0.1:80", "--timeout", "5", "--env", "A=1"]
            + ["--env=B=2", "--clear-env", "--umask", "027", "--", "node", "app.js", "--port", "80"],
            {"name": "web", "timeout": 5.0, "env": ["A=1", "B=2"], "clear_env": True, "umask": 0o27}
            | {"command": ["node", "app.js", "--port", "80"]},
        ),
        (["stop", "web", "--timeout", "3", "--signal", "KILL", "--unlocked"], {"timeout": 3.0, "signal": 9}),
        (["stop"], {"name": None, "timeout": None, "unlocked": False}),
        (["status", "--pidfile", "/run/x.pid", "--json"], {"pidfile": "/run/x.pid", "json": True}),
        (["restart", "web", "--timeout=2"], {"name": "web", "timeout": 2.0}),
        (["start", "--timeout", "100ms", "--", "x"], {"timeout": 0.1}),
    ],
    ids=lambda value: value[0] if isinstance(value, list) else "",
)
def test_the_table_parses(argv: list[str], expected: dict[str, object]) -> None:
    from daemonkit.cli import PROGRAM

    parsed = vars(PROGRAM.parse(argv))
    assert {key: parsed[key] for key in expected} == expected


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "ten"])
def test_bad_numbers_are_usage_errors(cli: Cli, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli("start", "--timeout", value, "--", cli.sleep, "60")
    assert info.value.code == 2
    assert "invalid duration" in capsys.readouterr().err
    assert not cli.rundir.exists()  # nothing started, nothing created


def test_a_mistyped_option_suggests_the_closest(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli("stop", "web", "--timout", "3")
    assert "did you mean --timeout?" in capsys.readouterr().err


IMPORTS = """
import sys
import daemonkit
print(" ".join(sorted({"argparse", "json", "socket", "subprocess", "logging"} & set(sys.modules))))
"""


def test_import_daemonkit_stays_light() -> None:
    """A daemon pays for what `import daemonkit` loads: counted, not timed."""
    result = subprocess.run(
        [sys.executable, "-S", "-c", IMPORTS],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(PYTHONPATH=str(Path(__file__).parent.parent)),
    )
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "\n")


def test_a_command_that_exits_at_once_is_not_reported_started(cli: Cli) -> None:
    """exec readiness means the command was exec'ed and stayed up; its exit
    status reaches the launcher however the scheduler orders the two."""
    for attempt in range(10):
        code, out, err = cli("start", "--name", f"brief{attempt}", "--", "true")
        assert (code, out) == (1, ""), attempt
        assert err == f"daemonkit: brief{attempt}: exited with status 0 right after it started\n"


@pytest.mark.parametrize(
    ("command", "status", "message"),
    [
        ("no-such-command-dk", 127, "command not found: no-such-command-dk"),
        ("{tmp}/plain.txt", 126, "not executable: {tmp}/plain.txt"),
    ],
)
def test_command_that_cannot_run(cli: Cli, tmp_path: Path, command: str, status: int, message: str) -> None:
    (tmp_path / "plain.txt").write_text("not a program\n")
    command, message = command.format(tmp=tmp_path), message.format(tmp=tmp_path)
    code, out, err = cli("start", "--name", "bad", "--", command)
    assert (code, out) == (status, "")
    assert err == f"daemonkit: bad: {message}\n"
    assert not cli.pidfile("bad").exists()


def test_command_exiting_before_ready_reports_status_and_log(cli: Cli, tmp_path: Path) -> None:
    script = "echo starting; echo 'config missing' >&2; exit 4"
    code, _, err = cli(
        "start", "--name", "early", "--wait-ready", f"file:{tmp_path}/never", "--", "sh", "-c", script
    )
    assert code == 4
    lines = err.splitlines()
    assert lines[0] == "daemonkit: early: exited with status 4 before it was ready"
    assert lines[1] == f"last lines of {cli.rundir}/early.log:"
    assert lines[2:] == ["  | starting", "  | config missing"]
    assert holder_pid(cli.pidfile("early")) is None and not cli.pidfile("early").exists()


def test_timeout_stops_the_half_started_daemon(cli: Cli, tmp_path: Path) -> None:
    code, _, err = cli(
        "start",
        "--name",
        "slow",
        "--timeout",
        "0.5",
        "--wait-ready",
        f"file:{tmp_path}/never",
        "--",
        cli.sleep,
        "60",
    )
    assert code == 1
    assert err.splitlines()[0] == (
        f"daemonkit: slow: not ready after 0.5 s (waiting for file:{tmp_path}/never); stopped it"
    )
    wait_for(lambda: not [p for p in _processes_of(cli.sleep)], what="no daemon left")


def _processes_of(executable: str) -> list[int]:
    from support import processes_mentioning

    return processes_mentioning(executable)


def test_wait_ready_tcp(cli: Cli) -> None:
    port = free_port()
    server = f"import time, http.server; time.sleep(0.3); http.server.test(port={port}, bind='127.0.0.1')"
    code, out, err = cli(
        "start",
        "--name",
        "web",
        "--wait-ready",
        f"tcp:127.0.0.1:{port}",
        "--",
        sys.executable,
        "-c",
        server,
        str(cli.tmp_path),
    )
    assert code == 0, err
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


def test_wait_ready_unix(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    server = (
        "import socket, sys, time; time.sleep(0.2); s = socket.socket(socket.AF_UNIX);"
        "s.bind(sys.argv[1]); s.listen(); time.sleep(60)"
    )
    code, _, err = cli(
        "start",
        "--name",
        "usock",
        "--wait-ready",
        f"unix:{path}",
        "--",
        sys.executable,
        "-c",
        server,
        str(path),
    )
    assert code == 0, err
    assert path.exists()


def test_wait_ready_notify_with_systemd_notify(cli: Cli) -> None:
    script = 'sleep 0.3; systemd-notify --ready; exec "$0" 60'
    code, out, err = cli(
        "start", "--name", "notified", "--wait-ready", "notify", "--", "sh", "-c", script, cli.sleep
    )
    assert code == 0, err
    pid = cli.pid("notified")
    assert alive(pid) and os.readlink(f"/proc/{pid}/exe") == "/usr/bin/sleep"


def test_wait_ready_notify_with_daemonkit_ready(cli: Cli, tmp_path: Path) -> None:
    root = str(Path(__file__).parent.parent)
    program = (
        f"import sys, time; sys.path.insert(0, {root!r}); import daemonkit\n"
        "with daemonkit.daemonize(manual_ready=True):  # NOTIFY_SOCKET set: no second fork\n"
        "    time.sleep(0.3); daemonkit.ready(); time.sleep(60)\n"
    )
    code, _, err = cli(
        "start", "--name", "pyd", "--wait-ready", "notify", "--", sys.executable, "-c", program, str(tmp_path)
    )
    assert code == 0, err
    pid = cli.pid("pyd", exe=None)
    assert os.readlink(f"/proc/{pid}/exe").startswith(os.path.realpath(sys.executable)[:-3])


def test_invalid_wait_ready(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:  # a usage error, before anything starts
        cli("start", "--wait-ready", "tcp:nowhere", "--", cli.sleep, "60")
    assert info.value.code == 2
    assert "invalid --wait-ready 'tcp:nowhere'" in capsys.readouterr().err.splitlines()[-1]
    assert not _processes_of(cli.sleep)


@each_posix_path
def test_stop_kills_a_daemon_that_ignores_sigterm(cli: Cli) -> None:
    script = 'trap "" TERM; while :; do "$0" 0.05; done'
    cli("start", "--name", "stubborn", "--", "sh", "-c", script, cli.sleep)
    pid = cli.pid("stubborn", exe=None)
    wait_for(lambda: signal.SIGTERM in signal_set(proc_status(pid)["SigIgn"]), what="the trap")
    code, out, err = cli("stop", "stubborn", "--timeout", "0.5")
    assert code == 0
    assert err == "stubborn: still running 0.5 s after SIGTERM; sending SIGKILL\n"
    assert out.startswith(f"stopped stubborn (pid {pid})")
    assert not alive(pid) and not cli.pidfile("stubborn").exists()


@each_posix_path
def test_stop_reaches_the_daemons_children(cli: Cli) -> None:
    script = '"$0" 60 & echo $! > "$1"; wait'
    child_file = cli.tmp_path / "child.pid"
    cli("start", "--name", "parent", "--", "sh", "-c", script, cli.sleep, str(child_file))
    child = int(wait_for(lambda: child_file.exists() and child_file.read_text().strip()))
    assert cli("stop", "parent")[0] == 0
    wait_for(lambda: not alive(child), what="the child's death")


# Without /proc neither the lock's holders nor a zombie can be told apart.
@posix_paths("native", "HAS_PIDFD", "HAS_CLOSE_RANGE")
def test_children_left_holding_the_lock_after_the_daemon_exited(cli: Cli, posix_fallback: str) -> None:
    """They inherited the lock fd: the daemon is dead, they are what it left."""
    script = '"$0" 60 & echo $! > "$1"; "$0" 0.3; exec true'
    child_file = cli.tmp_path / "child.pid"
    cli("start", "--name", "parent", "--", "sh", "-c", script, cli.sleep, str(child_file))
    daemon = int(cli.pidfile("parent").read_text())
    child = int(wait_for(lambda: child_file.exists() and child_file.read_text().strip()))
    wait_for(lambda: not alive(daemon), what="the daemon's exit")
    # A reader that merely has the pidfile open is not one of them.
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; f = open(sys.argv[1]); sys.stdin.read()",
            str(cli.pidfile("parent")),
        ],
        stdin=subprocess.PIPE,
    )
    try:
        left = f"pid {daemon} has exited, but processes it started still hold the pidfile: {child}"
        assert cli("status", "parent")[:2] == (
            1,
            f"parent: dead: {left}; 'daemonkit stop parent' stops them\n"
            f"  command  {shlex.join(['sh', '-c', script, cli.sleep, str(child_file)])}\n"
            f"  pidfile  {cli.pidfile('parent')}\n",
        )
        code, _, err = cli("start", "--name", "parent", "--", cli.sleep, "60")
        assert (code, err) == (
            1,
            f"daemonkit: parent: not started: {left}; 'daemonkit stop parent' stops them\n",
        )
        assert cli("reload", "parent")[0] == 3
        code, out, _ = cli("stop", "parent")
        assert code == 0 and out.startswith("stopped parent (what it left running) in ")
        assert not alive(child) and not cli.pidfile("parent").exists()
        assert reader.poll() is None
        assert cli("status", "parent")[0] == 3
    finally:
        reader.kill()
        reader.communicate()


@each_posix_path
def test_stale_pidfile_naming_a_live_process_is_never_signalled(cli: Cli) -> None:
    cli.rundir.mkdir()
    cli.pidfile("ghost").write_text("999999\n")  # the daemon that wrote it is long gone...
    written = os.stat(cli.pidfile("ghost")).st_mtime - 1
    bystander = subprocess.Popen([cli.sleep, "60"])  # ...and its PID now belongs to this process
    try:
        cli.pidfile("ghost").write_text(f"{bystander.pid}\n")
        os.utime(cli.pidfile("ghost"), (written, written))
        code, out, _ = cli("status", "ghost")
        assert code == 1 and "stale" in out
        code, out, _ = cli("stop", "ghost")
        assert (code, out) == (0, "ghost: not running (stale pidfile); removed it\n")
        assert bystander.poll() is None
        assert not cli.pidfile("ghost").exists()
        assert cli("status", "ghost")[0] == 3
        assert cli("reload", "ghost")[0] == 3
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.parametrize("contents", [b"0\n", b"-1\n", b"1\n", b"garbage", b"\x00\x00"])
def test_malformed_pidfile(cli: Cli, contents: bytes) -> None:
    cli.rundir.mkdir()
    cli.pidfile("bad").write_bytes(contents)
    code, out, _ = cli("status", "bad")
    assert code == 4 and out.startswith("bad: unknown: pidfile ")
    code, _, err = cli("stop", "bad")
    assert code == 1 and err.startswith("daemonkit: bad: pidfile ")
    assert cli.pidfile("bad").read_bytes() == contents


def test_reload_sends_sighup(cli: Cli, tmp_path: Path) -> None:
    marker = tmp_path / "hup"
    script = 'trap "echo hup >> $1" HUP; while :; do "$0" 0.05; done'
    cli("start", "--name", "rel", "--", "sh", "-c", script, cli.sleep, str(marker))
    code, out, _ = cli("reload", "rel")
    assert (code, out) == (0, f"rel: sent SIGHUP to pid {cli.pid('rel', exe=None)}\n")
    wait_for(lambda: marker.exists() and marker.read_text() == "hup\n", what="HUP trap")


@each_posix_path
def test_restart_uses_the_recorded_command(cli: Cli) -> None:
    cli("start", "--name", "nap", "--umask", "077", "--", cli.sleep, "60")
    first = cli.pid("nap")
    code, out, err = cli("restart", "nap")
    assert code == 0, err
    second = cli.pid("nap")
    assert second != first and not alive(first)
    assert out.splitlines()[-1].startswith(f"started nap (pid {second}), ready in ")
    assert proc_status(second)["Umask"] == "0077"
    with open(f"/proc/{second}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[:2] == [cli.sleep.encode(), b"60"]


def test_restart_without_record(cli: Cli) -> None:
    code, _, err = cli("restart", "nothing")
    assert code == 1 and "no record of how it was started" in err


def test_list(cli: Cli) -> None:
    assert cli("list") == (0, f"no daemons in {cli.rundir}\n", "")
    cli("start", "--name", "one", "--", cli.sleep, "60")
    cli("start", "--name", "two", "--", cli.sleep, "61")
    cli("stop", "two")
    code, out, _ = cli("list")
    lines = out.splitlines()
    header = ["NAME", "PID", "STATE", "RESTARTS", "UPTIME", "CPU", "MEM", "COMMAND"]
    assert code == 0 and lines[0].split() == header
    assert lines[1].split()[:4] == ["one", str(cli.pid("one")), "running", "0"]
    assert lines[2].split()[:5] == ["two", "-", "stopped", "0", "-"]
    rows = json.loads(cli("list", "--json")[1])
    assert [r["name"] for r in rows] == ["one", "two"]


def test_run_in_the_foreground(cli: Cli, tmp_path: Path) -> None:
    pidfile = tmp_path / "fg.pid"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "daemonkit",
            "run",
            "--pidfile",
            str(pidfile),
            "--umask",
            "077",
            "--",
            "sh",
            "-c",
            'echo "$$ $(cat "$0") $(umask)"; exit 5',
            str(pidfile),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(PYTHONPATH=str(Path(__file__).parent.parent)),
    )
    assert result.returncode == 5, result.stderr
    shell_pid, pid_in_file, umask = result.stdout.split()
    assert shell_pid == pid_in_file  # the command replaced daemonkit and holds the lock
    assert umask == "0077"


@root_only
def test_user_option_drops_privileges(cli: Cli) -> None:
    code, _, err = cli("start", "--name", "nob", "--user", "nobody", "--chdir", "/", "--", "/bin/sleep", "60")
    assert code == 0, err
    pid = cli.pid("nob")
    assert proc_status(pid)["Uid"].split() == ["65534"] * 4
    assert os.stat(cli.pidfile("nob")).st_uid == 0


def test_bad_user_chdir_and_pidfile_directory(cli: Cli, tmp_path: Path) -> None:
    for argv, text in [
        (["--user", "no-such-user-dk"], "unknown user 'no-such-user-dk'"),
        (["--chdir", str(tmp_path / "missing")], f"cannot chdir to {tmp_path / 'missing'}"),
        (["--pidfile", str(tmp_path / "missing" / "x.pid")], "does not exist"),
    ]:
        code, out, err = cli("start", *argv, "--", cli.sleep, "60")
        assert code == 1 and out == "" and text in err and len(err.splitlines()) == 1, err
    assert not _processes_of(cli.sleep)
    assert not (tmp_path / "missing").exists()


@root_only
def test_unwritable_pidfile_directory(cli: Cli, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o755)
    os.chmod(tmp_path, 0o755)
    result = daemonkit_as_nobody(
        "start", "--pidfile", str(locked / "x.pid"), "--chdir", "/", "--", "sleep", "60"
    )
    assert result.returncode == 1
    assert result.stderr == f"daemonkit: pidfile {locked / 'x.pid'}: cannot open: Permission denied\n"
    assert not list(locked.iterdir())


def test_progress_line_on_a_terminal(cli: Cli, tmp_path: Path) -> None:
    import pty

    ready = tmp_path / "ready"
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daemonkit",
            "start",
            "--name",
            "prog",
            "--wait-ready",
            f"file:{ready}",
            "--",
            "sh",
            "-c",
            'sleep 1.6; touch "$0"; exec sleep 60',
            str(ready),
        ],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=clean_env(PYTHONPATH=str(Path(__file__).parent.parent), DAEMONKIT_RUNDIR=str(cli.rundir)),
    )
    os.close(secondary)
    output = b""
    try:
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: the terminal's last writer is gone
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(primary)
        assert proc.wait(timeout=30) == 0
    text = output.decode()
    assert f"\r\x1b[Kwaiting for file:{ready} … 1 s" in text
    assert "started prog (pid" in text


ZOMBIE_KEEPER = """
import ctypes, os, sys, time
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans come to us
launcher = os.fork()
if launcher == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
os.waitpid(launcher, 0)  # reap the launcher only; the daemon will stay a zombie
print("keeper ready", flush=True)
time.sleep(120)
"""


@each_posix_path
def test_a_zombie_counts_as_stopped(cli: Cli) -> None:
    keeper = subprocess.Popen(
        [
            sys.executable,
            "-c",
            ZOMBIE_KEEPER,
            sys.executable,
            "-m",
            "daemonkit",
            "start",
            "--name",
            "z",
            "--",
            cli.sleep,
            "60",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=clean_env(DAEMONKIT_RUNDIR=str(cli.rundir), PYTHONPATH=str(Path(__file__).parent.parent)),
    )
    try:
        assert keeper.stdout is not None and "keeper ready" in (
            keeper.stdout.readline() + keeper.stdout.readline()
        )
        pid = cli.pid("z")
        code, out, _ = cli("stop", "z")
        assert code == 0 and out.startswith(f"stopped z (pid {pid})")
        with open(f"/proc/{pid}/stat") as f:
            assert f.read().rsplit(")", 1)[1].split()[0] == "Z"  # nobody reaped it, yet it is stopped
        assert cli("status", "z")[0] == 3
    finally:
        keeper.kill()
        keeper.communicate()


def test_stop_pins_the_process_and_waits_without_polling(cli: Cli, tmp_path: Path) -> None:
    cli("start", "--name", "nap", "--", cli.sleep, "60")
    trace = tmp_path / "trace"
    result = subprocess.run(
        [
            "strace",
            "-f",
            "-qq",
            "-o",
            str(trace),
            "-e",
            "trace=pidfd_open,pidfd_send_signal,kill,poll,ppoll,clock_nanosleep,nanosleep,select,pselect6",
            sys.executable,
            "-m",
            "daemonkit",
            "stop",
            "nap",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(DAEMONKIT_RUNDIR=str(cli.rundir), PYTHONPATH=str(Path(__file__).parent.parent)),
    )
    assert result.returncode == 0, result.stderr
    calls = [line.split(None, 1)[1] for line in trace.read_text().splitlines()]
    names = [call.split("(", 1)[0] for call in calls]
    assert "pidfd_open" in names
    assert "clock_nanosleep" not in names and "nanosleep" not in names  # woken by the exit, not a timer
    assert names.count("poll") >= 1


@root_only
def test_run_as_pid_1_reaps_orphans_and_forwards_sigterm(tmp_path: Path) -> None:
    started, terminated = tmp_path / "started", tmp_path / "terminated"
    script = (
        'sh -c "sleep 1 &"; '  # an orphan: re-parented to PID 1, which must reap it
        f'trap "echo term > {terminated}; exit 0" TERM; echo $$ > {started}; '
        "while :; do sleep 0.05; done"
    )
    unshare = subprocess.Popen(
        [
            "unshare",
            "--fork",
            "--pid",
            "--mount-proc",
            sys.executable,
            "-m",
            "daemonkit",
            "run",
            "--",
            "sh",
            "-c",
            script,
        ],
        env=clean_env(PYTHONPATH=str(Path(__file__).parent.parent)),
    )
    try:
        wait_for(started.exists, what="the command in the new PID namespace")
        assert started.read_text().strip() == "2"  # daemonkit is PID 1, the command its child
        with open(f"/proc/{unshare.pid}/task/{unshare.pid}/children") as f:
            init = int(f.read().split()[0])

        with open(f"/proc/{init}/task/{init}/children") as f:
            assert len(f.read().split()) == 2  # the command and the orphan

        def zombies() -> list[int]:
            with open(f"/proc/{init}/task/{init}/children") as f:
                children = [int(c) for c in f.read().split()]
            return [c for c in children if not alive(c) and os.path.exists(f"/proc/{c}")]

        def orphan_reaped() -> bool:
            with open(f"/proc/{init}/task/{init}/children") as f:
                return len(f.read().split()) == 1 and not zombies()  # only the command is left

        wait_for(orphan_reaped, what="the orphan to be reaped by PID 1")
        os.kill(init, signal.SIGTERM)
        assert unshare.wait(timeout=10) == 0
        assert terminated.read_text() == "term\n"
    finally:
        kill_everything_under(tmp_path)  # the namespace's init outlives a killed unshare
        unshare.kill()
        unshare.wait()


@root_only
def test_stop_of_another_users_daemon_says_not_ours(cli: Cli) -> None:
    import shutil
    import tempfile

    public = Path(tempfile.mkdtemp(prefix="daemonkit-public-"))  # readable by nobody
    os.chmod(public, 0o755)
    pidfile = public / "rootd.pid"
    try:
        cli("start", "--pidfile", str(pidfile), "--chdir", "/", "--", "/bin/sleep", "60")
        pid = int(pidfile.read_text())
        result = daemonkit_as_nobody("stop", "--pidfile", str(pidfile))
        assert result.returncode == 1
        assert result.stderr == (
            f"daemonkit: rootd: pid {pid} is not ours to signal (another user's process);"
            " run as its user or as root\n"
        )
        assert alive(pid)
    finally:
        kill_everything_under(public)
        shutil.rmtree(public)
