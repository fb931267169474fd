"""daemonkit's PidFile under python-daemon, and lockfile's PIDLockFile under daemonkit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from support import Launcher, alive, clean_env, holder_pid, wait_for

from daemonkit import read_pid

ROOT = str(Path(__file__).parent.parent)

PYTHON_DAEMON_WITH_PIDFILE = """
import sys, time
sys.path.insert(0, sys.argv[2])
import daemon
from daemonkit import PidFile
with daemon.DaemonContext(pidfile=PidFile(sys.argv[1])):
    time.sleep(60)
"""

DAEMONKIT_WITH_PIDLOCKFILE = """
import sys, time
sys.path.insert(0, sys.argv[2])
from lockfile.pidlockfile import PIDLockFile
from daemonkit import daemonize
with daemonize(pidfile=PIDLockFile(sys.argv[1])):
    time.sleep(60)
"""


def run(code: str, pidfile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, str(pidfile), ROOT, "daemonkit-interop-test"],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
    )


def test_pidfile_works_as_python_daemon_pidfile(launcher: Launcher, tmp_path: Path) -> None:
    pidfile = tmp_path / "pd.pid"
    try:
        assert run(PYTHON_DAEMON_WITH_PIDFILE, pidfile).returncode == 0
        # python-daemon's launcher does not wait: poll for the lock.
        pid = wait_for(lambda: pidfile.exists() and holder_pid(pidfile), what="python-daemon's daemon")
        assert read_pid(pidfile) == pid and alive(pid)
        second = run(PYTHON_DAEMON_WITH_PIDFILE, pidfile)
        assert second.returncode == 0  # python-daemon's launcher cannot know...
        # ...but the second daemon gave up (its launcher did not wait for it) and did not take over.
        wait_for(lambda: _interop_pids() == [pid], what="the second daemon to give up")
        assert holder_pid(pidfile) == pid
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not alive(pid))
        assert holder_pid(pidfile) is None  # kill -9 leaves nothing stale
    finally:
        for pid in _interop_pids():
            os.kill(pid, signal.SIGKILL)


def test_lockfile_pidlockfile_works_as_pidfile(launcher: Launcher, tmp_path: Path) -> None:
    pidfile = tmp_path / "lf.pid"
    try:
        result = run(DAEMONKIT_WITH_PIDLOCKFILE, pidfile)
        assert result.returncode == 0, result.stderr
        pid = read_pid(pidfile)  # written by lockfile in the daemon, before READY
        assert pid is not None and pid != os.getpid() and alive(pid)
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not pidfile.exists(), what="lockfile's release on SIGTERM")
    finally:
        for pid in _interop_pids():
            os.kill(pid, signal.SIGKILL)


def _interop_pids() -> list[int]:
    from support import processes_mentioning

    return processes_mentioning("daemonkit-interop-test")


PYTHON_DAEMON_WITH_LOCKFILE = """
import sys, time
import daemon, daemon.pidfile
with daemon.DaemonContext(pidfile=daemon.pidfile.TimeoutPIDLockFile(sys.argv[1])):
    time.sleep(60)
"""


def run_python_daemon(pidfile: Path) -> int:
    result = subprocess.run(
        [sys.executable, "-c", PYTHON_DAEMON_WITH_LOCKFILE, str(pidfile), "daemonkit-interop-test"],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
    )
    assert result.returncode == 0, result.stderr
    return int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), what="lockfile's pidfile"))


def dk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemonkit", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(PYTHONPATH=ROOT),
    )


def test_python_daemon_pidfile_is_read_and_stopped_only_on_request(
    launcher: Launcher, tmp_path: Path
) -> None:
    from daemonkit import status

    pidfile = tmp_path / "pd.pid"
    try:
        pid = run_python_daemon(pidfile)
        assert read_pid(pidfile) == pid
        state = status(pidfile)
        assert (state.state, state.pid, state.locked) == ("running", pid, False)
        shown = dk("status", "--pidfile", str(pidfile))
        assert shown.returncode == 0 and "holds no lock" in shown.stdout
        refused = dk("stop", "--pidfile", str(pidfile))
        assert refused.returncode == 1 and "--unlocked" in refused.stderr
        assert alive(pid)
        stopped = dk("stop", "--unlocked", "--pidfile", str(pidfile))
        assert stopped.returncode == 0, stopped.stderr
        assert not alive(pid) and not pidfile.exists()
    finally:
        for pid in _interop_pids():
            os.kill(pid, signal.SIGKILL)


def test_reused_pid_in_an_unlocked_pidfile_is_never_signalled(tmp_path: Path) -> None:
    pidfile = tmp_path / "old.pid"
    pidfile.write_text("999999\n")
    written = os.stat(pidfile).st_mtime
    later = subprocess.Popen(["sleep", "60"])  # starts after the file was written: a reused PID
    try:
        pidfile.write_text(f"{later.pid}\n")
        os.utime(pidfile, (written - 1, written - 1))
        assert dk("status", "--pidfile", str(pidfile)).returncode == 1  # stale
        stop = dk("stop", "--unlocked", "--pidfile", str(pidfile))
        assert stop.returncode == 0 and "not running (stale pidfile)" in stop.stdout
        assert later.poll() is None
    finally:
        later.kill()
        later.wait()


def test_stale_lockfile_pidfile_does_not_block_daemonkit(launcher: Launcher, tmp_path: Path) -> None:
    pidfile = tmp_path / "app.pid"
    try:
        pid = run_python_daemon(pidfile)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not alive(pid))
        assert pidfile.exists()  # lockfile's O_EXCL file stays behind
        new = launcher.start(options={"pidfile": str(pidfile)})
        assert new != pid and read_pid(pidfile) == new and holder_pid(pidfile) == new
    finally:
        for pid in _interop_pids():
            os.kill(pid, signal.SIGKILL)
