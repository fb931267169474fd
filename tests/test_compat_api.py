"""daemonkit.compat's python-daemon and lockfile API details, with real
processes: attributes after construction, the detach rule, the exceptions
users catch, PIDLockFile from a second object, and pidfiles left by a
running lockfile-based daemon."""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import lockfile
import pytest
from support import alive, clean_env, kill_everything_under, proc_stat, proc_status, root_only, wait_for

import daemonkit
from daemonkit import compat
from daemonkit.compat import pidfile as compat_pidfile

HERE = Path(__file__).parent
ROOT = HERE.parent


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    try:
        yield tmp_path
    finally:
        kill_everything_under(tmp_path)


def script(
    state: Path, body: str, implementation: str = "daemonkit", **env: str
) -> tuple[list[str], dict[str, str]]:
    """``body`` as a script (STATE is its directory) to run under
    python-daemon or under daemonkit.compat (through tests/compat_shim)."""
    path = state / f"script-{time.monotonic_ns()}.py"
    path.write_text(f"import os, sys, time\nSTATE = {str(state)!r}\n" + textwrap.dedent(body))
    imports = f"{HERE / 'compat_shim'}:{ROOT}" if implementation == "daemonkit" else str(ROOT)
    return [sys.executable, str(path)], clean_env(PYTHONPATH=imports, **env)


def run_script(
    state: Path, body: str, implementation: str = "daemonkit", stdin: object = subprocess.DEVNULL, **env: str
) -> subprocess.CompletedProcess[str]:
    argv, environ = script(state, body, implementation, **env)
    return subprocess.run(
        argv,
        env=environ,
        stdin=stdin,  # type: ignore[arg-type]
        capture_output=True,
        text=True,
        timeout=30,
        cwd=state,
    )


DAEMON_WRITES_PID = """
import daemon, daemon.pidfile
with daemon.DaemonContext(working_directory=STATE, {options}):
    with open(os.path.join(STATE, "pid.tmp"), "w") as f:
        f.write(f"{{os.getpid()}} {{os.getsid(0)}}")
    os.rename(os.path.join(STATE, "pid.tmp"), os.path.join(STATE, "pid"))
    while True:
        time.sleep(1)
"""


def daemon_pid(state: Path) -> int:
    marker = state / "pid"
    wait_for(marker.exists, what="the daemon's pid marker")
    return int(marker.read_text().split()[0])


# --- options as attributes ------------------------------------------------


def test_every_option_reads_back_with_python_daemons_defaults() -> None:
    ctx = compat.DaemonContext()
    assert (ctx.uid, ctx.gid) == (os.getuid(), os.getgid())
    assert ctx.working_directory == "/" and ctx.chroot_directory is None
    assert ctx.initgroups is False and ctx.prevent_core is True
    assert ctx.stdin is ctx.stdout is ctx.stderr is ctx.pidfile is ctx.files_preserve is None
    assert ctx.signal_map == {
        signal.SIGTSTP: None,
        signal.SIGTTIN: None,
        signal.SIGTTOU: None,
        signal.SIGTERM: "terminate",
    }
    assert ctx.detach_process is compat.daemon.is_detach_process_context_required()
    marker = object()
    for name in ("chroot_directory", "umask", "uid", "files_preserve", "stdout", "signal_map"):
        setattr(ctx, name, marker)
        assert getattr(ctx, name) is marker
    assert not ctx.is_open
    with pytest.raises(AttributeError):
        ctx.is_open = True  # type: ignore[misc]


def test_attributes_set_after_construction_take_effect(state: Path) -> None:
    result = run_script(
        state,
        """
        import signal, daemon
        ctx = daemon.DaemonContext()
        ctx.working_directory = STATE
        ctx.stdout = open(os.path.join(STATE, "out"), "w")
        ctx.umask = 0o077
        ctx.signal_map = {signal.SIGHUP: "terminate", signal.SIGTERM: "terminate"}
        with ctx:
            print("daemon", os.getpid(), flush=True)
            open("pid.tmp", "w").write(str(os.getpid()))
            os.rename("pid.tmp", "pid")
            while True:
                time.sleep(1)
        """,
    )
    assert result.returncode == 0, result.stderr
    pid = daemon_pid(state)
    assert (state / "out").read_text() == f"daemon {pid}\n"
    assert (state / "pid").stat().st_mode & 0o777 == 0o600
    os.kill(pid, signal.SIGHUP)  # 'terminate', named in signal_map: a clean exit
    wait_for(lambda: not alive(pid), what="SIGHUP to terminate the daemon")


def test_detach_process_false_set_as_an_attribute_does_not_fork(state: Path) -> None:
    argv, env = script(
        state,
        """
        import daemon
        ctx = daemon.DaemonContext()
        ctx.stdout = open(os.path.join(STATE, "out"), "w")
        ctx.detach_process = False
        with ctx:
            print("serving", flush=True)
            open(os.path.join(STATE, "pid.tmp"), "w").write(str(os.getpid()))
            os.rename(os.path.join(STATE, "pid.tmp"), os.path.join(STATE, "pid"))
            while True:
                time.sleep(1)
        """,
    )
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, cwd=state)
    try:
        assert daemon_pid(state) == proc.pid
        assert (state / "out").read_text() == "serving\n"
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()


def test_unknown_signal_map_method_fails_in_the_launcher(state: Path) -> None:
    result = run_script(
        state,
        """
        import signal, daemon
        ctx = daemon.DaemonContext(working_directory=STATE, signal_map={signal.SIGHUP: "relaod"})
        with ctx:
            open("pid", "w").write(str(os.getpid()))
        """,
    )
    assert result.returncode == 1
    # Raised in the launcher, as python-daemon raises (a library does not
    # turn errors into one line: scripts and the daemonkit command do).
    assert "'relaod'" in result.stderr.splitlines()[-1], result.stderr
    assert not (state / "pid").exists()


# --- the detach decision --------------------------------------------------


def test_detaches_under_systemd_when_the_parent_is_not_init(state: Path) -> None:
    """A SysV init script run by systemd: INVOCATION_ID is set, the parent
    is the script. python-daemon detaches, so the script's start returns."""
    result = run_script(state, DAEMON_WRITES_PID.format(options=""), INVOCATION_ID="0123")
    assert result.returncode == 0, result.stderr
    assert proc_stat(daemon_pid(state))["sid"] != os.getsid(0)  # it forked and called setsid()


def test_stays_in_the_foreground_when_stdin_is_a_socket(state: Path) -> None:
    """inetd hands a socket as stdin: python-daemon does not fork."""
    argv, env = script(state, DAEMON_WRITES_PID.format(options=""))
    ours, theirs = socket.socketpair()
    with ours, theirs:
        proc = subprocess.Popen(argv, env=env, stdin=theirs, cwd=state)
        try:
            assert daemon_pid(state) == proc.pid
        finally:
            proc.kill()
            proc.wait()


def test_explicit_detach_process_wins_over_the_rule(state: Path) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        result = run_script(state, DAEMON_WRITES_PID.format(options="detach_process=True"), stdin=theirs)
    assert result.returncode == 0, result.stderr
    assert proc_stat(daemon_pid(state))["sid"] != os.getsid(0)


# --- the exceptions users catch -------------------------------------------


def test_lock_errors_are_lockfiles_and_daemonkits() -> None:
    pairs = [
        (compat_pidfile.AlreadyLocked, lockfile.AlreadyLocked),
        (compat_pidfile.LockTimeout, lockfile.LockTimeout),
        (compat_pidfile.LockFailed, lockfile.LockFailed),
        (compat_pidfile.LockError, lockfile.LockError),
        (compat_pidfile.NotLocked, lockfile.NotLocked),
        (compat_pidfile.NotMyLock, lockfile.NotMyLock),
        (compat_pidfile.UnlockError, lockfile.UnlockError),
        (compat_pidfile.Error, lockfile.Error),
    ]
    for ours, theirs in pairs:
        assert issubclass(ours, theirs) and issubclass(ours, daemonkit.DaemonError), ours
    for cls in (compat_pidfile.AlreadyLocked, compat_pidfile.LockTimeout):
        assert issubclass(cls, daemonkit.AlreadyRunning)
        copy = pickle.loads(pickle.dumps(cls("/run/app.pid", 42)))
        assert (type(copy), copy.path, copy.pid) == (cls, "/run/app.pid", 42)


def test_without_lockfile_the_names_and_hierarchy_stay() -> None:
    code = """
import sys
sys.modules["lockfile"] = None  # not installed
from daemonkit.compat import pidfile as p
def chain(cls):
    return [c.__name__ for c in cls.__mro__ if c.__module__.startswith("daemonkit.compat")]
for name in ("AlreadyLocked", "LockTimeout", "LockFailed", "NotLocked", "NotMyLock"):
    print(name, chain(getattr(p, name)))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=clean_env(PYTHONPATH=str(ROOT))
    )
    assert result.returncode == 0, result.stderr
    chains = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert "'LockError', 'Error', 'AlreadyLocked', 'LockError', 'Error'" in chains["AlreadyLocked"]
    assert chains["NotMyLock"] == str(
        ["NotMyLock", "UnlockError", "Error", "NotMyLock", "UnlockError", "Error"]
    )


OPEN_OR_REFUSE = """
import daemon, daemon.pidfile, lockfile
lock = daemon.pidfile.TimeoutPIDLockFile(os.path.join(STATE, "app.pid"), {timeout})
ctx = daemon.DaemonContext(working_directory=STATE, pidfile=lock)
try:
    ctx.open()
except {caught} as exc:
    print("caught", type(exc).__name__, exc.pid == int(open(os.path.join(STATE, "pid")).read()))
    sys.exit(3)
open(os.path.join(STATE, "pid.tmp"), "w").write(str(os.getpid()))
os.rename(os.path.join(STATE, "pid.tmp"), os.path.join(STATE, "pid"))
while True:
    time.sleep(1)
"""


@pytest.mark.parametrize(
    ("timeout", "caught", "name"),
    [
        ("None", "lockfile.AlreadyLocked", "AlreadyLocked"),
        ("0.2", "lockfile.LockTimeout", "LockTimeout"),
        ("None", "(daemon.pidfile.AlreadyLocked, daemon.pidfile.LockTimeout)", "AlreadyLocked"),
    ],
)
def test_a_second_start_raises_in_the_launcher_what_users_catch(
    state: Path, timeout: str, caught: str, name: str
) -> None:
    body = OPEN_OR_REFUSE.format(timeout=timeout, caught=caught)
    assert run_script(state, body).returncode == 0
    first = daemon_pid(state)
    second = run_script(state, body)
    assert (second.returncode, second.stdout) == (3, f"caught {name} True\n"), second.stderr
    assert alive(first) and (state / "app.pid").read_text() == f"{first}\n"


def test_an_uncaught_already_locked_is_raised_in_the_launcher(state: Path) -> None:
    body = DAEMON_WRITES_PID.format(options='pidfile=daemon.pidfile.PIDLockFile("app.pid")')
    assert run_script(state, body).returncode == 0
    first = daemon_pid(state)
    second = run_script(state, body)
    assert second.returncode == 1
    last = second.stderr.splitlines()[-1]
    assert last.startswith("daemonkit.compat.errors.AlreadyLocked: ") and f"(pid {first})" in last, last


# --- lockfile's PIDLockFile API -------------------------------------------


def test_a_second_object_of_the_holder_process_releases(tmp_path: Path) -> None:
    path = str(tmp_path / "app.pid")
    first, second = compat_pidfile.PIDLockFile(path), compat_pidfile.PIDLockFile(path)
    first.acquire()
    assert second.is_locked() and second.i_am_locking() and second.read_pid() == os.getpid()
    second.release()  # lockfile: the PID in the file is ours, so it is our lock
    assert not os.path.exists(path) and not first.is_locked() and not first.i_am_locking()
    with pytest.raises(compat_pidfile.NotLocked):
        first.release()
    third = compat_pidfile.PIDLockFile(path)
    third.acquire()  # the lock really was dropped
    third.release()


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Another process holding a compat pidfile lock."""
    path = str(tmp_path / "held.pid")
    code = (
        f"from daemonkit.compat.pidfile import PIDLockFile as P; P({path!r}).acquire(); print(1, flush=True)"
    )
    code += "; input()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=clean_env(PYTHONPATH=str(ROOT)),
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "1\n"
        yield path, proc
    finally:
        proc.kill()
        proc.communicate()


def test_another_processes_lock_is_not_mine_and_cannot_be_broken(
    holder: tuple[str, subprocess.Popen[str]],
) -> None:
    path, proc = holder
    lock = compat_pidfile.PIDLockFile(path)
    assert lock.is_locked() and not lock.i_am_locking() and lock.read_pid() == proc.pid
    with pytest.raises(compat_pidfile.NotMyLock):
        lock.release()
    lock.break_lock()  # a live flock holder keeps its file: documented
    assert os.path.exists(path) and lock.is_locked()
    with pytest.raises(lockfile.AlreadyLocked):
        lock.acquire()


def test_read_pid_of_garbage_is_none_as_in_lockfile(tmp_path: Path) -> None:
    path = tmp_path / "app.pid"
    lock = compat_pidfile.PIDLockFile(str(path))
    assert lock.read_pid() is None  # missing
    for garbage in (b"b0gUs", b"12abc\n", b"-1\n", b"\x00" * 5000):
        path.write_bytes(garbage)
        assert lock.read_pid() is None, garbage
    path.unlink()
    os.symlink("/etc/passwd", path)
    assert lock.read_pid() is None


def test_a_relative_path_resolves_when_locked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    lock = compat_pidfile.PIDLockFile("app.pid")
    lock.acquire()
    monkeypatch.chdir("/")
    assert lock.path == "app.pid" and lock.i_am_locking() and lock.read_pid() == os.getpid()
    assert (tmp_path / "app.pid").read_text() == f"{os.getpid()}\n"
    lock.release()
    assert not (tmp_path / "app.pid").exists()


# --- pidfiles left by a running lockfile-based daemon ---------------------


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "300"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_an_unlocked_pidfile_of_a_live_writer_counts_as_locked(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    path = tmp_path / "app.pid"
    wait_for(lambda: compat.pidfile.legacy.start_time(sleeper.pid), what="sleep to start")
    path.write_text(f"{sleeper.pid}\n")  # as lockfile writes it: no lock
    lock = compat_pidfile.TimeoutPIDLockFile(str(path))
    assert lock.is_locked() and not lock.i_am_locking()
    with pytest.raises(compat_pidfile.AlreadyLocked) as caught:
        lock.acquire()
    assert caught.value.pid == sleeper.pid
    with pytest.raises(compat_pidfile.LockTimeout):
        lock.acquire(0.1)
    assert path.read_text() == f"{sleeper.pid}\n"  # untouched
    lock.break_lock()  # nobody holds a flock: breaking removes it, as lockfile does
    assert not path.exists()


def test_a_pidfile_naming_a_pid_reused_since_is_stale(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    path = tmp_path / "app.pid"
    path.write_text(f"{sleeper.pid}\n")
    an_hour_ago = time.time() - 3600  # written before this process started
    os.utime(path, (an_hour_ago, an_hour_ago))
    lock = compat_pidfile.PIDLockFile(str(path))
    assert not lock.is_locked()
    lock.acquire()
    assert path.read_text() == f"{os.getpid()}\n"
    lock.release()


def test_a_pidfile_naming_a_dead_pid_is_stale(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    path = tmp_path / "app.pid"
    path.write_text(f"{dead.pid}\n")
    lock = compat_pidfile.PIDLockFile(str(path))
    assert not lock.is_locked()
    lock.acquire()
    lock.release()


def test_the_python_daemon_version_still_running_blocks_the_compat_version(state: Path) -> None:
    """The first thing a migration does: the old version runs, the new one
    starts with the same pidfile."""
    body = DAEMON_WRITES_PID.format(options='pidfile=daemon.pidfile.TimeoutPIDLockFile("app.pid", 1)')
    assert run_script(state, body, implementation="python-daemon").returncode == 0
    old = daemon_pid(state)
    wait_for(lambda: (state / "app.pid").exists(), what="python-daemon's pidfile")
    written = (state / "app.pid").read_text()
    new = run_script(state, body)
    assert new.returncode == 1 and f"already running (pid {old})" in new.stderr, new.stderr
    assert alive(old) and (state / "app.pid").read_text() == written == f"{old}\n"
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: not alive(old), what="kill -9")
    (state / "pid").unlink()
    assert run_script(state, body).returncode == 0  # its stale file no longer blocks
    assert daemon_pid(state) != old


# --- a privilege drop with a pidfile ---------------------------------------


@pytest.fixture
def drop_layout(request: pytest.FixtureRequest) -> Iterator[tuple[Path, Path]]:
    """/tmp/X (root, 0755) with run/ owned by ``request.param`` and marks/
    (sticky, world-writable) for the daemon's marker, outside root's private
    pytest directories so that nobody can reach them."""
    base = Path(tempfile.mkdtemp(prefix="daemonkit-drop-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        (base / "run").mkdir(mode=0o755)
        os.chown(base / "run", request.param, request.param)
        (base / "marks").mkdir()
        os.chmod(base / "marks", 0o1777)
        yield base / "run", base / "marks"
    finally:
        kill_everything_under(base)
        shutil.rmtree(base, ignore_errors=True)


DROP = """
import daemon, daemon.pidfile
with daemon.DaemonContext(uid=65534, gid=65534,
                          pidfile=daemon.pidfile.TimeoutPIDLockFile({pidfile!r}, 1)):
    open({marker!r} + ".tmp", "w").write(str(os.getpid()))
    os.rename({marker!r} + ".tmp", {marker!r})
    while True:
        time.sleep(1)
"""


@root_only
@pytest.mark.parametrize("drop_layout", [0, 65534], indirect=True)
def test_a_privilege_drop_with_a_pidfile_runs_and_exits_0(
    drop_layout: tuple[Path, Path], tmp_path: Path
) -> None:
    """Both layouts python-daemon users have: the pidfile's directory owned
    by root, or by the service user."""
    run, marks = drop_layout
    pidfile, marker = run / "app.pid", marks / "pid"
    argv, env = script(tmp_path, DROP.format(pidfile=str(pidfile), marker=str(marker)))
    statuses = tmp_path / "statuses"
    reaper = subprocess.Popen(
        [sys.executable, str(HERE / "reaper.py"), str(statuses), "--", *argv],
        env=env,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: marker.exists() or reaper.poll() is not None, what="the daemon")
        assert marker.exists(), reaper.communicate()[1]
        pid = int(marker.read_text())
        assert pidfile.read_text() == f"{pid}\n"
        assert proc_status(pid)["Uid"].split()[0] == "65534"
        st = pidfile.stat()
        assert (st.st_uid, st.st_mode & 0o777) == (0, 0o644)  # created by root, before the drop
        os.kill(pid, signal.SIGTERM)
        assert reaper.wait(timeout=15) == 0
        codes = dict(line.split() for line in statuses.read_text().splitlines())
        assert codes[str(pid)] == "0" and codes["launcher"] != str(pid)
        owner = run.stat().st_uid
        # The service user can remove the file from its own directory; from
        # root's it stays, unlocked, and blocks no later start.
        assert pidfile.exists() == (owner == 0)
        if owner == 0:
            assert not compat_pidfile.PIDLockFile(str(pidfile)).is_locked()
    finally:
        reaper.kill()
        reaper.communicate()


def test_a_forked_copy_does_not_take_over_the_parents_lock(tmp_path: Path) -> None:
    path = tmp_path / "app.pid"
    lock = compat_pidfile.PIDLockFile(str(path))
    lock.acquire()
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            try:
                lock.acquire()
                code = 1
            except compat_pidfile.AlreadyLocked:
                code = 2 if lock.i_am_locking() else 0
            lock.__exit__(None, None, None)  # a copy's exit leaves the parent's lock alone
        finally:
            os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert path.read_text() == f"{os.getpid()}\n" and lock.i_am_locking()
    lock.release()
