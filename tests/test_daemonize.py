"""daemonize(), @daemon and the launcher, checked from outside through /proc."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import (
    APP,
    AS_NOBODY,
    POSIX_FALLBACKS,
    Launcher,
    alive,
    clean_env,
    each_posix_path,
    holder_pid,
    proc_fds,
    proc_stat,
    proc_status,
    processes_mentioning,
    root_only,
    signal_set,
    wait_for,
    world_readable_copy,
)

EXPECTED_IGNORED = {signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGPIPE, signal.SIGXFSZ}


@each_posix_path
def test_daemon_follows_the_sysv_steps(launcher: Launcher) -> None:
    result = launcher.run()
    assert result.returncode == 0, result.stderr
    assert result.stdout == result.stderr == ""
    # The file is complete when the launcher exits: the daemon's PID, not ours.
    contents = launcher.pidfile.read_bytes()
    pid = int(contents)
    assert contents == b"%d\n" % pid
    # The body has written its marker (through a file of its own): its fds are final.
    wait_for(lambda: launcher.mark("pid") == str(pid), what="daemon body")
    assert alive(pid)
    info = proc_stat(pid)
    assert info["ppid"] != os.getpid()
    assert info["sid"] != pid, "a session leader could reacquire a terminal"
    assert info["pgrp"] != pid
    assert info["tty_nr"] == 0
    assert os.readlink(f"/proc/{pid}/cwd") == "/"
    status = proc_status(pid)
    assert status["Umask"] == "0022"
    assert signal_set(status["SigBlk"]) == set()
    assert signal_set(status["SigIgn"]) == EXPECTED_IGNORED

    def settled() -> dict[int, str] | None:
        fds = proc_fds(pid)
        return None if any(link.startswith("pipe:") for link in fds.values()) else fds

    # The daemon closes its end of the readiness pipe just after READY; the
    # launcher may exit in between.
    fds = wait_for(settled, what="the daemon to close the readiness pipe")
    lock = max(fds)  # the lowest free fd when it was opened (as root, the directory's fd was open too)
    assert fds == {0: "/dev/null", 1: "/dev/null", 2: "/dev/null", lock: str(launcher.pidfile)}
    assert stat.S_IMODE(os.stat(launcher.pidfile).st_mode) == 0o644
    assert holder_pid(launcher.pidfile) == pid


def test_chdir_umask_and_stdio_files(launcher: Launcher, tmp_path: Path) -> None:
    out, err = tmp_path / "out.log", tmp_path / "err.log"
    pid = launcher.start(
        body="print",
        options={"working_directory": str(tmp_path), "umask": 0o027, "stdout": str(out), "stderr": str(err)},
    )
    assert os.readlink(f"/proc/{pid}/cwd") == str(tmp_path)
    assert proc_status(pid)["Umask"] == "0027"
    fds = proc_fds(pid)
    assert (fds[0], fds[1], fds[2]) == ("/dev/null", str(out), str(err))
    wait_for(lambda: out.exists() and "printed by the daemon" in out.read_text())
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o640


@each_posix_path
def test_preserved_files_survive_and_nothing_else(launcher: Launcher, tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    pid = launcher.start(preserve_log=str(log))
    fds = proc_fds(pid)
    assert sorted(fds.values()) == ["/dev/null"] * 3 + [str(log), str(launcher.pidfile)]
    wait_for(lambda: "logged from the daemon" in log.read_text(), what="log line")


@each_posix_path
def test_files_preserve(launcher: Launcher, tmp_path: Path) -> None:
    kept = tmp_path / "kept.db"
    pid = launcher.start(preserve_file=str(kept))
    assert sorted(proc_fds(pid).values()) == ["/dev/null"] * 3 + [str(launcher.pidfile), str(kept)]


@each_posix_path
def test_logging_fd_closed_when_not_preserved(launcher: Launcher, tmp_path: Path) -> None:
    pid = launcher.start(preserve_log=str(tmp_path / "app.log"), options={"preserve_logging": False})
    assert sorted(proc_fds(pid).values()) == ["/dev/null"] * 3 + [str(launcher.pidfile)]


@each_posix_path
def test_fd_closing_does_not_depend_on_rlimit(tmp_path: Path, posix_fallback: str) -> None:
    """close_range (or /proc/self/fd) makes the cost O(open fds): the same
    number of close syscalls at RLIMIT_NOFILE 1024 and 20000."""
    counts = []
    for limit in (1024, 20000):
        trace = tmp_path / f"trace.{limit}"
        (tmp_path / str(limit)).mkdir()
        launcher = Launcher(tmp_path / str(limit), posix=POSIX_FALLBACKS[posix_fallback])
        command = [
            "strace",
            "-f",
            "-qq",
            "-e",
            "trace=close,close_range",
            "-o",
            str(trace),
            sys.executable,
            str(APP),
            launcher.config(body="return"),
        ]
        try:
            result = subprocess.run(
                ["prlimit", f"--nofile={limit}:{limit}", "--", *command],
                capture_output=True,
                text=True,
                timeout=60,
                env=clean_env(),
            )
            assert result.returncode == 0, result.stderr
        finally:
            launcher.cleanup()
        # One line per call: "PID close(3) = 0", or "PID close(3 <unfinished ...>"
        # followed by a "<... close resumed>" line that must not count twice.
        calls = [
            line for line in trace.read_text().splitlines() if line.split(None, 1)[1].startswith("close")
        ]
        assert len(calls) < 200
        # The path under test is the one taken: close_range(2) only with it.
        assert any(call.split(None, 1)[1].startswith("close_range") for call in calls) == (
            posix_fallback != "HAS_CLOSE_RANGE"
        )
        counts.append(len(calls))
    assert counts[0] == counts[1]


@each_posix_path
def test_already_running_exits_1_and_leaves_the_winner_alone(launcher: Launcher) -> None:
    pid = launcher.start()
    before = os.stat(launcher.pidfile)
    result = launcher.run()
    assert result.returncode == 1
    assert result.stderr.strip().endswith(f"already running (pid {pid}); pidfile {launcher.pidfile}")
    assert "Traceback" not in result.stderr
    after = os.stat(launcher.pidfile)
    assert launcher.pidfile.read_bytes() == b"%d\n" % pid
    assert (after.st_ino, after.st_mtime_ns, after.st_mode) == (
        before.st_ino,
        before.st_mtime_ns,
        before.st_mode,
    )
    assert alive(pid)


def test_already_running_can_be_caught_in_the_launcher(launcher: Launcher) -> None:
    pid = launcher.start()
    result = launcher.run(catch=True)
    assert (result.returncode, result.stdout) == (0, f"caught {pid}\n")


@pytest.mark.timeout(120)
def test_fifty_simultaneous_launchers_leave_one_daemon(launcher: Launcher, tmp_path: Path) -> None:
    go = tmp_path / "go"
    ready_config = launcher.config(go_file=str(go))
    procs = [
        subprocess.Popen(
            [sys.executable, str(APP), ready_config],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        for _ in range(50)
    ]
    try:
        go.touch()
        results = [(proc.wait(timeout=60), proc.communicate()[1]) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
            if proc.stderr:
                proc.stderr.close()
    codes = sorted(code for code, _ in results)
    assert codes == [0] + [1] * 49, [err for _, err in results if err][:3]
    pid = int(launcher.pidfile.read_bytes())
    assert all(f"already running (pid {pid})" in err for code, err in results if code == 1)
    daemons = [p for p in processes_mentioning(str(tmp_path)) if proc_stat(p)["ppid"] != os.getpid()]
    assert daemons == [pid]


@each_posix_path
def test_kill_9_leaves_no_stale_lock(launcher: Launcher) -> None:
    pid = launcher.start()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), what="daemon death")
    assert holder_pid(launcher.pidfile) is None  # the file is still there, the lock is not
    new_pid = launcher.start()
    assert new_pid != pid and alive(new_pid)


def run_under_reaper(
    launcher: Launcher, tmp_path: Path, **config: object
) -> tuple[subprocess.Popen[bytes], Path]:
    statuses = tmp_path / "statuses"
    reaper = subprocess.Popen(
        [
            sys.executable,
            str(Path(APP).parent / "reaper.py"),
            str(statuses),
            "--",
            sys.executable,
            str(APP),
            launcher.config(**config),
        ],
        env=clean_env(),
    )
    return reaper, statuses


def exit_statuses(reaper: subprocess.Popen[bytes], statuses: Path) -> dict[int, int]:
    assert reaper.wait(timeout=30) == 0
    lines = [line.split() for line in statuses.read_text().splitlines() if not line.startswith("launcher")]
    return {int(p): int(c) for p, c in lines}


def test_sigterm_runs_finally_and_atexit_and_exits_0(launcher: Launcher, tmp_path: Path) -> None:
    reaper, statuses = run_under_reaper(launcher, tmp_path)
    pid = int(wait_for(lambda: launcher.mark("pid"), what="daemon start"))
    wait_for(lambda: launcher.pidfile.exists() and holder_pid(launcher.pidfile) == pid)
    os.kill(pid, signal.SIGTERM)
    codes = exit_statuses(reaper, statuses)
    assert codes[pid] == 0
    assert list(codes.values()) == [0, 0]  # the launcher reaped the intermediate itself
    assert launcher.mark("finally") == "x" and launcher.mark("atexit") == "x"
    assert not launcher.pidfile.exists()


@pytest.mark.parametrize("status", [0, 7])
def test_decorated_main_exit_status_is_its_return_value(
    launcher: Launcher, tmp_path: Path, status: int
) -> None:
    reaper, statuses = run_under_reaper(launcher, tmp_path, decorator=True, body="return", status=status)
    codes = exit_statuses(reaper, statuses)
    pid = int(launcher.mark("pid") or 0)
    assert codes[pid] == status
    assert not launcher.pidfile.exists()


def test_sighup_reloads_and_reopens_logs(launcher: Launcher, tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    pid = launcher.start(options={"stdout": str(log)})
    log.rename(tmp_path / "out.log.1")  # what logrotate does
    os.kill(pid, signal.SIGHUP)
    wait_for(lambda: launcher.mark("reload") == "x", what="on_reload")
    wait_for(lambda: log.exists() and log.read_text() == "reloaded\n", what="reopened log")
    assert proc_fds(pid)[1] == str(log)
    assert alive(pid)


def test_sighup_without_on_reload_does_not_kill(launcher: Launcher) -> None:
    pid = launcher.start(marker=None)
    assert holder_pid(launcher.pidfile) == pid
    os.kill(pid, signal.SIGHUP)
    os.kill(pid, signal.SIGTERM)  # handled after HUP: the daemon exits cleanly
    wait_for(lambda: not launcher.pidfile.exists(), what="clean exit after HUP")


def test_signal_map_adds_handlers(launcher: Launcher) -> None:
    pid = launcher.start(dispositions=True)
    ignored = signal_set(proc_status(pid)["SigIgn"])
    assert {signal.SIGUSR2, signal.SIGWINCH} <= ignored and signal.SIGURG not in ignored
    os.kill(pid, signal.SIGHUP)
    os.kill(pid, signal.SIGUSR1)
    wait_for(lambda: launcher.mark("usr1") == "x")
    assert alive(pid)


def test_threads_are_refused_unless_allowed(launcher: Launcher) -> None:
    result = launcher.run(threads=True)
    assert result.returncode == 1
    assert "other threads are running" in result.stderr and "Traceback" not in result.stderr
    assert not launcher.pidfile.exists()  # refused before anything was created
    assert launcher.start(threads=True, options={"allow_threads": True})


def assert_failed_cleanly(
    launcher: Launcher, result: subprocess.CompletedProcess[str], status: int, text: str
) -> None:
    assert result.returncode == status, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and text in lines[0], result.stderr
    assert lines[0].startswith("app.py: ")
    assert wait_for(lambda: not processes_mentioning(str(launcher.tmp_path)), what="no daemon left")
    assert holder_pid(launcher.pidfile) is None


def test_missing_working_directory(launcher: Launcher) -> None:
    result = launcher.run(options={"working_directory": "/nonexistent/dir"})
    assert_failed_cleanly(launcher, result, 1, "cannot chdir to /nonexistent/dir: No such file or directory")


def test_unknown_user(launcher: Launcher) -> None:
    result = launcher.run(options={"user": "no-such-user-dk"})
    assert_failed_cleanly(launcher, result, 1, "unknown user 'no-such-user-dk'")


def test_missing_pidfile_directory(launcher: Launcher, tmp_path: Path) -> None:
    result = launcher.run(options={"pidfile": str(tmp_path / "missing" / "app.pid")})
    assert_failed_cleanly(launcher, result, 1, f"directory {tmp_path / 'missing'} does not exist")


@root_only
def test_unwritable_pidfile_directory(launcher: Launcher, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o755)
    os.chmod(tmp_path, 0o755)
    config = launcher.config(options={"pidfile": str(locked / "app.pid")}, marker=None)
    result = subprocess.run(
        [*AS_NOBODY, sys.executable, str(world_readable_copy() / "tests" / "app.py"), config],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
    )
    assert_failed_cleanly(launcher, result, 1, "cannot open: Permission denied")


def test_exception_before_manual_ready(launcher: Launcher) -> None:
    result = launcher.run(body="raise", options={"manual_ready": True})
    assert_failed_cleanly(launcher, result, 1, "RuntimeError: boom")


def test_exit_before_manual_ready_passes_the_status(launcher: Launcher) -> None:
    result = launcher.run(body="exit", status=3, options={"manual_ready": True})
    assert_failed_cleanly(launcher, result, 3, "exited with status 3 before it was ready")


def test_manual_ready_releases_the_launcher(launcher: Launcher) -> None:
    pid = launcher.start(body="ready_then_sleep", options={"manual_ready": True})
    assert alive(pid)


def test_ready_timeout_terminates_the_half_started_daemon(launcher: Launcher) -> None:
    started = time.monotonic()
    result = launcher.run(options={"manual_ready": True, "ready_timeout": 0.5})
    assert time.monotonic() - started < 20
    assert_failed_cleanly(launcher, result, 1, "not ready after 0.5 s; stopped it")


def test_buffered_output_is_printed_once(launcher: Launcher, tmp_path: Path) -> None:
    out = tmp_path / "out.log"
    result = launcher.run(before="said before", options={"stdout": str(out)}, body="print")
    assert result.returncode == 0
    assert result.stdout == "said before"
    wait_for(lambda: out.exists() and "printed by the daemon" in out.read_text())
    assert "said before" not in out.read_text()


def test_stdio_given_as_file_object(launcher: Launcher, tmp_path: Path) -> None:
    out = tmp_path / "out.log"
    pid = launcher.start(options={"stdout": {"fd_of": str(out)}}, body="print")
    assert proc_fds(pid)[1] == str(out)
    wait_for(lambda: "printed by the daemon" in out.read_text())


@each_posix_path
def test_launcher_with_closed_stdio_keeps_the_lock(launcher: Launcher) -> None:
    config = launcher.config()
    result = subprocess.run(
        ["sh", "-c", 'exec "$0" "$1" "$2" <&- >&- 2>&-', sys.executable, str(APP), config],
        timeout=30,
        env=clean_env(),
    )
    assert result.returncode == 0
    pid = int(launcher.pidfile.read_bytes())
    fds = proc_fds(pid)
    assert fds[0] == fds[1] == fds[2] == "/dev/null"
    assert holder_pid(launcher.pidfile) == pid


@pytest.mark.parametrize("variable", ["INVOCATION_ID", "NOTIFY_SOCKET"])
def test_supervised_process_does_not_fork(launcher: Launcher, tmp_path: Path, variable: str) -> None:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    env = clean_env(**{variable: str(tmp_path / "notify.sock") if variable == "NOTIFY_SOCKET" else "x"})
    config = launcher.config(body="sleep", options={"stdout": None})
    proc = subprocess.Popen([sys.executable, str(APP), config], env=env, stdout=subprocess.PIPE)
    try:
        if variable == "NOTIFY_SOCKET":
            notify.settimeout(10)
            assert notify.recv(4096) == b"READY=1"
        pid = int(wait_for(lambda: launcher.mark("pid"), what="foreground start"))
        assert pid == proc.pid
        assert proc_stat(pid)["ppid"] == os.getpid()
        assert proc_fds(pid)[1].startswith("pipe:")  # stdio left as given
        assert wait_for(lambda: holder_pid(launcher.pidfile)) == proc.pid
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        assert not launcher.pidfile.exists()
    finally:
        proc.kill()
        proc.communicate()
        notify.close()


def test_closing_the_terminal_does_not_kill_the_daemon(launcher: Launcher, tmp_path: Path) -> None:
    session = f"daemonkit-test-{os.getpid()}"
    config = launcher.config()
    script = tmp_path / "start.sh"
    script.write_text(f"{sys.executable} {APP} '{config}'\n")
    subprocess.run(
        ["tmux", "-L", session, "new-session", "-d", "-s", session, "bash"], check=True, timeout=10
    )
    try:
        subprocess.run(
            ["tmux", "-L", session, "send-keys", "-t", session, f"bash {script}", "Enter"],
            check=True,
            timeout=10,
        )
        pid = int(wait_for(lambda: holder_pid(launcher.pidfile), what="daemon start in tmux"))
    finally:
        subprocess.run(["tmux", "-L", session, "kill-server"], timeout=10)
    # The terminal is gone and its session got SIGHUP; handled signals are
    # still delivered in order, so a clean exit on TERM proves HUP did not kill.
    assert alive(pid) and proc_stat(pid)["tty_nr"] == 0
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not launcher.pidfile.exists())


@root_only
def test_privilege_drop_to_nobody(launcher: Launcher) -> None:
    pid = launcher.start(options={"user": "nobody"}, marker=None)
    status = proc_status(pid)
    assert status["Uid"].split() == ["65534"] * 4
    assert status["Gid"].split() == ["65534"] * 4
    assert "0" not in status["Groups"].split()
    pidfile = os.stat(launcher.pidfile)
    assert (pidfile.st_uid, stat.S_IMODE(pidfile.st_mode)) == (0, 0o644)  # created before the drop
    assert status["CapEff"] == "0000000000000000"


@root_only
def test_chroot(launcher: Launcher, tmp_path: Path) -> None:
    jail = tmp_path / "jail"
    jail.mkdir()
    pid = launcher.start(options={"chroot_directory": str(jail)}, marker=None)
    assert os.readlink(f"/proc/{pid}/root") == str(jail)
    assert os.readlink(f"/proc/{pid}/cwd") == str(jail)


def test_core_dumps_are_disabled(launcher: Launcher) -> None:
    pid = launcher.start()
    with open(f"/proc/{pid}/limits") as f:
        line = next(line for line in f if line.startswith("Max core file size"))
    assert line.split()[4:6] == ["0", "0"]


def test_logrotate_then_reload_moves_the_log(launcher: Launcher, tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    pid = launcher.start(options={"stdout": str(log)}, body="print")
    wait_for(lambda: "printed by the daemon" in log.read_text())
    config = tmp_path / "logrotate.conf"
    reload = f"{sys.executable} -m daemonkit reload --pidfile {launcher.pidfile}"
    config.write_text(f"{log} {{\n  rotate 2\n  postrotate\n    {reload}\n  endscript\n}}\n")
    root = str(Path(__file__).parent.parent)
    result = subprocess.run(
        ["logrotate", "--force", "--state", str(tmp_path / "state"), str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(PYTHONPATH=root),
    )
    assert result.returncode == 0, result.stderr
    assert "printed by the daemon" in (tmp_path / "app.log.1").read_text()
    wait_for(lambda: log.exists() and log.read_text() == "reloaded\n", what="the reopened log")
    assert proc_fds(pid)[1] == str(log)


def test_opening_a_terminal_later_does_not_make_it_controlling(launcher: Launcher) -> None:
    pid = launcher.start(body="open_tty")
    assert wait_for(lambda: launcher.mark("tty"), what="the tty marker").startswith("/dev/pts/")
    assert proc_stat(pid)["tty_nr"] == 0  # not a session leader: no controlling terminal


def test_inetd_style_socket_on_stdin_means_no_fork(launcher: Launcher) -> None:
    ours, theirs = socket.socketpair()
    proc = subprocess.Popen([sys.executable, str(APP), launcher.config()], stdin=theirs, env=clean_env())
    theirs.close()
    try:
        pid = int(wait_for(lambda: launcher.mark("pid"), what="the body"))
        assert pid == proc.pid  # inetd supervises it: no fork
        assert proc_fds(pid)[0].startswith("socket:")
    finally:
        proc.kill()
        proc.wait()
        ours.close()


def test_env_replaces_the_environment(launcher: Launcher) -> None:
    launcher.start(body="env", options={"env": {"ONLY": "this"}})
    environ = wait_for(lambda: launcher.mark("environ"), what="the environ marker")
    assert json.loads(environ) == {"ONLY": "this"}
