"""What the tests share: starting real daemons, looking at them through
/proc, and always cleaning them up. Fixtures are in conftest.py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import pytest

HERE = Path(__file__).parent
APP = HERE / "app.py"
# A test must not believe it runs under systemd because the shell does.
SUPERVISOR_VARS = ("NOTIFY_SOCKET", "INVOCATION_ID", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SUPERVISOR_VARS}
    env.update(extra)
    return env


ROOT = HERE.parent
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


TOOLS = HERE / "tools.txt"


def required_tools() -> dict[str, str]:
    """The system tools the tests run (tests/tools.txt): command -> Debian package."""
    tools = {}
    for line in TOOLS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            command, package = line.split()
            tools[command] = package
    return tools


def missing_tools() -> dict[str, str]:
    return {command: package for command, package in required_tools().items() if not shutil.which(command)}


_public: list[Path] = []


def world_readable_copy() -> Path:
    """A directory every user can read, holding a copy of the daemonkit
    package and of the tests' helper scripts, laid out as in the checkout
    (daemonkit/, tests/app.py, tests/reaper.py).

    A step run as nobody must not read the checkout: it may sit in a
    directory only its owner can enter (a clone under /root, mktemp -d).
    Made once per test session; remove_world_readable_copy() deletes it.
    """
    if not _public:
        public = Path(tempfile.mkdtemp(prefix="daemonkit-public-"))
        try:
            shutil.copytree(
                ROOT / "daemonkit", public / "daemonkit", ignore=shutil.ignore_patterns("__pycache__")
            )
            (public / "tests").mkdir()
            for script in ("app.py", "reaper.py"):
                shutil.copy(HERE / script, public / "tests" / script)
            for path in [public, *public.rglob("*")]:
                os.chmod(path, 0o755 if path.is_dir() else 0o644)
        except BaseException:
            shutil.rmtree(public)
            raise
        _public.append(public)
    return _public[0]


def remove_world_readable_copy() -> None:
    while _public:
        shutil.rmtree(_public.pop(), ignore_errors=True)


def daemonkit_as_nobody(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the daemonkit CLI as the unprivileged user nobody, from
    world_readable_copy()."""
    environ = clean_env(PYTHONPATH=str(world_readable_copy()), **env)
    environ.pop("XDG_CONFIG_HOME", None)  # so that HOME decides where user units go
    return subprocess.run(
        [*AS_NOBODY, sys.executable, "-m", "daemonkit", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=environ,
        cwd=env.get("HOME", "/"),
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy, with a deadline."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):  # gone before or while we read
        return False
    return state not in ("Z", "X")


def proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def proc_stat(pid: int) -> dict[str, int]:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return {"ppid": int(fields[1]), "pgrp": int(fields[2]), "sid": int(fields[3]), "tty_nr": int(fields[4])}


def proc_fds(pid: int) -> dict[int, str]:
    fd_dir = f"/proc/{pid}/fd"
    fds = {}
    for name in os.listdir(fd_dir):
        try:
            fds[int(name)] = os.readlink(f"{fd_dir}/{name}")
        except FileNotFoundError:  # closed while we looked
            pass
    return fds


def signal_set(mask_hex: str) -> set[int]:
    mask = int(mask_hex, 16)
    return {n + 1 for n in range(64) if mask >> n & 1}


def processes_mentioning(text: str) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if text.encode() in f.read():
                        pids.append(int(name))
            except OSError:
                pass
    return [p for p in pids if alive(p)]


# The paths of daemonkit._posix, each named by the flag it turns off, as
# the attribute values that do it (FD_DIR derives from HAS_PROC at import).
POSIX_FALLBACKS: dict[str, dict[str, Any]] = {
    "native": {},
    "HAS_PIDFD": {"HAS_PIDFD": False},
    "HAS_PROC": {"HAS_PROC": False, "FD_DIR": "/dev/fd" if os.path.isdir("/dev/fd") else None},
    "HAS_CLOSE_RANGE": {"HAS_CLOSE_RANGE": False},
}
# Runs a test once per entry of POSIX_FALLBACKS (fixture in conftest.py).
each_posix_path = pytest.mark.usefixtures("posix_fallback")


def posix_paths(*names: str) -> pytest.MarkDecorator:
    """Like each_posix_path, for only some entries of POSIX_FALLBACKS (say
    why the others cannot apply where you use it)."""
    assert set(names) <= set(POSIX_FALLBACKS), names
    return pytest.mark.parametrize("posix_fallback", names, indirect=True)


class Launcher:
    """Runs tests/app.py as a launcher and kills every daemon it leaves.

    ``posix``: daemonkit._posix attributes app.py sets before daemonizing
    (one entry of POSIX_FALLBACKS; the `launcher` fixture fills it in for
    tests that use `posix_fallback`)."""

    def __init__(self, tmp_path: Path, posix: dict[str, Any] | None = None) -> None:
        self.tmp_path = tmp_path
        self.pidfile = tmp_path / "app.pid"
        self.marker = tmp_path / "marker"
        self.marker.mkdir()
        self.posix = posix or {}

    def config(self, **config: Any) -> str:
        config.setdefault("marker", str(self.marker))
        if self.posix:
            config.setdefault("posix", self.posix)
        options = config.setdefault("options", {})
        options.setdefault("pidfile", str(self.pidfile))
        return json.dumps(config)

    def run(self, env: dict[str, str] | None = None, **config: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(APP), self.config(**config)],
            capture_output=True,
            text=True,
            timeout=30,
            env=env or clean_env(),
        )

    def start(self, **config: Any) -> int:
        """Start a daemon that must come up; return its PID (from the pidfile)."""
        result = self.run(**config)
        assert result.returncode == 0, result.stderr
        pid = int(self.pidfile.read_text())
        if config.get("marker", True) is not None:  # let the body finish opening files
            wait_for(lambda: self.mark("pid") == str(pid), what="daemon body")
        return pid

    def mark(self, name: str) -> str | None:
        path = self.marker / name
        return path.read_text() if path.exists() else None

    def cleanup(self) -> None:
        for pid in processes_mentioning(str(self.tmp_path)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def holder_pid(pidfile: str | os.PathLike[str]) -> int | None:
    """The PID of the running daemon of ``pidfile``, else None."""
    import daemonkit

    try:
        state = daemonkit.status(pidfile)
    except Exception:  # a teardown must go on: processes_using finds the rest
        return None
    return state.pid if state.running else None


def processes_using(directory: Path) -> list[int]:
    """Live processes (but us) whose command line mentions ``directory``, or
    whose cwd or an open fd lies below it: nginx's workers and a node started
    with a relative path mention nothing, but hold their logs open."""
    prefix = str(directory)
    found = set(processes_mentioning(prefix))
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid() or int(name) in found:
            continue
        try:
            entries = [f"/proc/{name}/cwd"] + [
                f"/proc/{name}/fd/{fd}" for fd in os.listdir(f"/proc/{name}/fd")
            ]
        except OSError:  # gone meanwhile, or not ours to look at
            continue
        for entry in entries:
            try:
                link = os.readlink(entry)
            except OSError:  # closed while we looked
                continue
            if link == prefix or link.startswith(prefix + "/"):
                found.add(int(name))
                break
    return sorted(pid for pid in found if alive(pid))


def kill_everything_under(directory: Path) -> None:
    """SIGKILL every holder of a pidfile below ``directory`` (and its group),
    and every process that uses it (see processes_using)."""
    for pidfile in directory.rglob("*.pid"):
        pid = holder_pid(pidfile)
        if pid:
            try:
                os.killpg(os.getpgid(pid), signal.SIGKILL)
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    for pid in processes_using(directory):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _exe(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


class Cli:
    """The daemonkit CLI in-process, with RUNDIR inside the test's tmp_path."""

    def __init__(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.tmp_path = tmp_path
        self.rundir = tmp_path / "run"
        self.capsys = capsys
        # Commands run from inside tmp_path, so that cleanup can find them.
        self.sleep = str(tmp_path / "sleep")
        os.symlink("/bin/sleep", self.sleep)

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        from daemonkit.cli import main

        self.capsys.readouterr()
        code = main(list(argv))
        out, err = self.capsys.readouterr()
        return code, out, err

    def pidfile(self, name: str) -> Path:
        return self.rundir / f"{name}.pid"

    def pid(self, name: str, exe: str | None = "/usr/bin/sleep") -> int:
        """The daemon's PID, once it runs ``exe``: readiness in exec mode
        means the exec succeeded, not that the new program has loaded."""
        pid = int(self.pidfile(name).read_text())
        if exe is not None:
            wait_for(lambda: _exe(pid) == exe, what=f"{exe} to run")
        return pid
