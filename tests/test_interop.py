"""daemonkit's PidFile under python-daemon, and lockfile's PIDLockFile under daemonkit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import Launcher, alive, clean_env, wait_for

from daemonkit import is_running, read_pid

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
        pid = wait_for(lambda: pidfile.exists() and is_running(pidfile), what="python-daemon's daemon")
        assert read_pid(pidfile) == pid and alive(pid)
        second = run(PYTHON_DAEMON_WITH_PIDFILE, pidfile)
        assert second.returncode == 0  # python-daemon's launcher cannot know...
        assert is_running(pidfile) == pid  # ...but the second daemon did not take over
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not alive(pid))
        assert is_running(pidfile) is None  # kill -9 leaves nothing stale
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
    from conftest import processes_mentioning

    return processes_mentioning("daemonkit-interop-test")
