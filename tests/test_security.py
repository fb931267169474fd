"""Running as root is safe: files another user could have planted are
refused, only the lock holder is believed, a dropped daemon cannot rewrite
its pidfile (issue 9, items 1, 3 and 17; RELIABILITY 1-7).

Attacks are real: the attacker is ``nobody`` (setpriv), /tmp has
protected_symlinks=0 and protected_regular=0 here, so they would work.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import (
    AS_NOBODY,
    Cli,
    Launcher,
    alive,
    daemonkit_as_nobody,
    holder_pid,
    root_only,
    wait_for,
)

from daemonkit import PidFile, PidFileError, is_running, stop
from daemonkit.errors import UnsafeFileError
from daemonkit.safedir import open_file

NOBODY = 65534
PYTHON = "/usr/bin/python3"  # one that nobody may execute
VICTIM = b"root's secret\n"


def as_nobody(*argv: str) -> None:
    subprocess.run([*AS_NOBODY, *argv], check=True, timeout=10)


def victim(directory: Path) -> Path:
    """A root-only file an attacker would like root to write to."""
    path = directory / "victim"
    path.write_bytes(VICTIM)
    os.chmod(path, 0o600)
    return path


def chatty(marker: Path) -> list[str]:
    """A command that writes to its stdout at once; ``marker`` in its
    command line lets the teardown find it."""
    return ["/bin/sh", "-c", "echo pwned; exec /bin/sleep 60", str(marker)]


# --- 1. every file opened as root: one rule --------------------------------


@root_only
def test_log_symlink_planted_in_the_service_users_directory_is_refused(cli: Cli, public: Path) -> None:
    target = victim(public)
    logs = public / "logs"
    logs.mkdir()
    os.chown(logs, NOBODY, NOBODY)
    as_nobody("ln", "-s", str(target), str(logs / "app.log"))
    code, out, err = cli(
        "start", "--name", "svc", "--user", "nobody", "--chdir", "/", "--log", str(logs / "app.log"),
        "--", *chatty(public),
    )  # fmt: skip
    assert code == 1, out
    assert f"{logs / 'app.log'}: is a symbolic link; refusing to follow it" in err
    assert target.read_bytes() == VICTIM
    assert not is_running(cli.pidfile("svc"))


@root_only
@pytest.mark.parametrize("option", ["--stdout", "--stderr", "--log"])
def test_stream_symlink_planted_in_a_sticky_directory_is_refused(cli: Cli, public: Path, option: str) -> None:
    target = victim(public)
    sticky = public / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    as_nobody("ln", "-s", str(target), str(sticky / "out.log"))
    code, _, err = cli("start", "--name", "s", option, str(sticky / "out.log"), "--", *chatty(public))
    assert code == 1
    assert "is a symbolic link; refusing to follow it" in err.splitlines()[0], err
    assert "secret" not in err  # nor is the target shown as "the last lines of the log"
    assert target.read_bytes() == VICTIM


@root_only
def test_a_log_file_another_user_planted_in_a_sticky_directory_is_refused(cli: Cli, public: Path) -> None:
    sticky = public / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    as_nobody("touch", str(sticky / "app.log"))
    code, _, err = cli("start", "--name", "p", "--log", str(sticky / "app.log"), "--", *chatty(public))
    assert code == 1
    assert "is owned by uid 65534, who could have planted it; refusing as root" in err, err
    assert (sticky / "app.log").read_bytes() == b""


@root_only
def test_a_log_directory_of_another_user_is_refused_even_with_user(cli: Cli, public: Path) -> None:
    logs = public / "logs"
    logs.mkdir()
    os.chown(logs, 4321, 4321)  # neither root nor the service user
    code, _, err = cli(
        "start", "--name", "o", "--user", "nobody", "--chdir", "/", "--log", str(logs / "app.log"),
        "--", *chatty(public),
    )  # fmt: skip
    assert code == 1
    assert f"directory {logs} is owned by uid 4321; refusing as root" in err, err
    assert not (logs / "app.log").exists()


@root_only
def test_a_log_in_the_service_users_directory_is_accepted(cli: Cli, public: Path) -> None:
    logs = public / "logs"
    logs.mkdir(mode=0o755)
    os.chown(logs, NOBODY, NOBODY)
    log = logs / "app.log"
    code, _, err = cli(
        "start", "--name", "ok", "--user", "nobody", "--chdir", "/", "--log", str(log), "--", *chatty(public)
    )
    assert code == 0, err
    wait_for(lambda: log.exists() and log.read_bytes() == b"pwned\n", what="the daemon's output")


@root_only
def test_hard_link_fifo_and_directory_in_place_of_a_log(public: Path) -> None:
    target = victim(public)
    os.link(target, public / "linked.log")  # what protected_hardlinks=0 would let anyone do
    os.mkfifo(public / "fifo.log")
    (public / "dir.log").mkdir()
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    with pytest.raises(UnsafeFileError, match="has other hard links"):
        open_file(str(public / "linked.log"), flags)
    with pytest.raises(UnsafeFileError, match="not a regular file"):
        open_file(str(public / "fifo.log"), flags)  # and does not block
    with pytest.raises(UnsafeFileError, match="not a regular file"):
        open_file(str(public / "fifo.log"), os.O_RDONLY)
    with pytest.raises(UnsafeFileError, match="is a directory"):
        open_file(str(public / "dir.log"), flags)
    assert target.read_bytes() == VICTIM


def test_unsafe_file_error_pickles() -> None:
    import pickle

    exc = pickle.loads(pickle.dumps(UnsafeFileError("/x.log", "is a symbolic link", "stdout file")))
    assert (exc.path, exc.reason, exc.kind, str(exc)) == (
        "/x.log",
        "is a symbolic link",
        "stdout file",
        "stdout file /x.log: is a symbolic link",
    )


@root_only
def test_as_nobody_a_log_symlink_is_not_followed(public: Path) -> None:
    home = public / "home"
    home.mkdir()
    os.chown(home, NOBODY, NOBODY)
    mine = home / "mine"
    as_nobody("sh", "-c", f"echo keep > {mine} && ln -s {mine} {home / 'app.log'}")
    result = daemonkit_as_nobody(
        "start", "--pidfile", str(home / "x.pid"), "--log", str(home / "app.log"),
        "--", "/bin/sh", "-c", "echo pwned; exec sleep 60", str(public),
    )  # fmt: skip
    assert result.returncode == 1
    assert f"{home / 'app.log'}: is a symbolic link; refusing to follow it" in result.stderr
    assert mine.read_text() == "keep\n"


@root_only
def test_pidfile_in_the_service_users_directory(public: Path) -> None:
    run = public / "run"
    run.mkdir(mode=0o755)
    os.chown(run, NOBODY, NOBODY)
    with pytest.raises(PidFileError, match=f"directory {run} is owned by uid 65534"):
        PidFile(run / "a.pid").lock()
    pidfile = PidFile(run / "a.pid")
    pidfile.lock(service_uid=NOBODY)
    try:
        pidfile.write(os.getpid())
        assert os.stat(run / "a.pid").st_uid == 0
    finally:
        pidfile.release()
    as_nobody("ln", "-s", str(victim(public)), str(run / "b.pid"))
    with pytest.raises(PidFileError, match="is a symbolic link"):
        PidFile(run / "b.pid", service_uid=NOBODY).lock()
    assert (public / "victim").read_bytes() == VICTIM


# --- 3. only the flock holder is believed; the lock fd is read-only --------


def _lock_fds(pid: int, path: Path) -> dict[int, int]:
    """fd -> open flags of the fds of ``pid`` on ``path``."""
    found = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}") == str(path):
                with open(f"/proc/{pid}/fdinfo/{name}") as f:
                    flags = next(line for line in f if line.startswith("flags:"))
                found[int(name)] = int(flags.split()[1], 8)
        except OSError:
            continue
    return found


@root_only
def test_the_exec_ed_command_inherits_a_read_only_lock_fd(cli: Cli) -> None:
    code, _, err = cli("start", "--name", "ro", "--user", "nobody", "--chdir", "/", "--", "/bin/sleep", "60")
    assert code == 0, err
    pid = cli.pid("ro")
    fds = _lock_fds(pid, cli.pidfile("ro"))
    assert len(fds) == 1, fds  # the read-write fd was closed once the PID was written
    assert [flags & os.O_ACCMODE for flags in fds.values()] == [os.O_RDONLY]
    assert holder_pid(cli.pidfile("ro")) == pid


@root_only
def test_a_dropped_daemon_cannot_write_another_pid_into_its_pidfile(cli: Cli, public: Path) -> None:
    script = (
        "import os, sys\n"
        "for fd in map(int, os.listdir('/proc/self/fd')):\n"
        "    if os.path.realpath(f'/proc/self/fd/{fd}') == sys.argv[1]:\n"
        "        try:\n"
        "            os.pwrite(fd, b'4242\\n', 0)\n"
        "            print('wrote', flush=True)\n"
        "        except OSError as exc:\n"
        "            print(exc.errno, flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    log = public / "out.log"
    pidfile = cli.pidfile("w")
    code, _, err = cli(
        "start", "--name", "w", "--user", "nobody", "--chdir", "/", "--log", str(log),
        "--", PYTHON, "-c", script, str(pidfile), str(public),
    )  # fmt: skip
    assert code == 0, err
    import errno

    wait_for(lambda: log.exists() and log.read_text() == f"{errno.EBADF}\n", what="the daemon's attempt")
    assert pidfile.read_text() == f"{holder_pid(pidfile)}\n"


@pytest.fixture
def locked_pidfile(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    """A pidfile locked and written by a real daemon-like process."""
    path = tmp_path / "app.pid"
    code = (
        "import sys, time\nfrom daemonkit import PidFile\n"
        "p = PidFile(sys.argv[1]); p.acquire(); print('ok', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ok\n"
        yield path, proc
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_a_process_that_merely_has_the_pidfile_open_is_not_signalled(
    locked_pidfile: tuple[Path, subprocess.Popen[bytes]],
) -> None:
    path, daemon = locked_pidfile
    # tail -f in its own session: stop() would signal its process group.
    tail = subprocess.Popen(["tail", "-f", str(path)], stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: _lock_fds(tail.pid, path), what="tail to open the pidfile")
        path.write_text(f"{tail.pid}\n")  # what a daemon holding a writable fd could do
        with pytest.raises(PidFileError, match=f"names PID {tail.pid}, which does not hold its lock"):
            is_running(path)
        with pytest.raises(PidFileError):
            stop(path, timeout=2)
        assert alive(tail.pid) and alive(daemon.pid)
    finally:
        tail.kill()
        tail.wait()


def test_the_callers_own_pid_is_never_believed(locked_pidfile: tuple[Path, subprocess.Popen[bytes]]) -> None:
    path, daemon = locked_pidfile
    path.write_text(f"{os.getpid()}\n")  # the caller has the file open while it reads it
    with pytest.raises(PidFileError, match="the caller itself"):
        is_running(path)
    assert alive(daemon.pid)


def test_the_real_holder_is_still_believed(locked_pidfile: tuple[Path, subprocess.Popen[bytes]]) -> None:
    path, daemon = locked_pidfile
    with open(path) as reader:  # another reader changes nothing
        assert holder_pid(path) == daemon.pid
        assert reader.read() == f"{daemon.pid}\n"
    assert stop(path, timeout=5).running
    assert daemon.wait(5) == -signal.SIGTERM


# --- 17. a dropped daemon exits cleanly although it cannot unlink ----------


@root_only
def test_release_after_the_privilege_drop_leaves_a_stale_file_and_no_error(public: Path) -> None:
    path = public / "app.pid"  # in root's directory, where nobody may not unlink
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    child = os.fork()
    if child == 0:
        status = 3
        try:
            pidfile = PidFile(path)
            pidfile.acquire()
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            pidfile.release()
            status = 0
        except BaseException as exc:
            os.write(2, f"{exc!r}\n".encode())
            status = 1
        finally:
            os.write(ready_w, b"x")
            os.read(go_r, 1)
            os._exit(status)
    try:
        assert os.read(ready_r, 1) == b"x"
        assert path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o644
        assert not is_running(path)  # the lock went with release(), before the exit
    finally:
        os.write(go_w, b"x")
        _, status = os.waitpid(child, 0)
        for fd in (ready_r, ready_w, go_r, go_w):
            os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0


# --- 15. --user sets HOME, USER, LOGNAME and SHELL --------------------------

ECHO_ENV = 'echo "$HOME $USER $LOGNAME $SHELL"; exec sleep 60'


@root_only
def test_user_gets_its_home_user_logname_and_shell(cli: Cli, public: Path) -> None:
    import pwd

    pw = pwd.getpwnam("nobody")
    log = public / "env.log"
    code, _, err = cli(
        "start", "--name", "env", "--user", "nobody", "--chdir", "/", "--log", str(log),
        "--", "/bin/sh", "-c", ECHO_ENV, str(public),
    )  # fmt: skip
    assert code == 0, err
    expected = f"{pw.pw_dir} nobody nobody {pw.pw_shell}\n"
    wait_for(lambda: log.exists() and log.read_text() == expected, what="the command's environment")


@root_only
def test_an_explicit_environment_keeps_what_it_says(public: Path) -> None:
    from daemonkit import spawn

    log = public / "env.log"
    pidfile = public / "env.pid"
    env = {"PATH": "/usr/bin:/bin", "HOME": "/srv/app"}
    pid = spawn(
        ["/bin/sh", "-c", ECHO_ENV, str(public)],
        pidfile=str(pidfile), env=env, user="nobody", stdout=str(log), working_directory="/",
    )  # fmt: skip
    assert pid == holder_pid(pidfile)
    wait_for(lambda: log.exists() and log.read_text().startswith("/srv/app nobody nobody "), what="env")


@root_only
def test_a_character_device_is_still_a_valid_log(cli: Cli) -> None:
    code, _, err = cli("start", "--name", "null", "--stdout", "/dev/null", "--", cli.sleep, "60")
    assert code == 0, err
    pid = cli.pid("null")
    assert os.readlink(f"/proc/{pid}/fd/1") == "/dev/null"
    with pytest.raises(UnsafeFileError, match="not a regular file"):
        open_file("/dev/null", os.O_WRONLY)  # devices only where a stream asks for them


@pytest.mark.timeout(60)
def test_lock_and_release_racing_keep_one_holder_at_a_time(tmp_path: Path) -> None:
    """RELIABILITY 10-11 with two opens per lock: holders unlink on release
    while others open, and never two hold at once (an O_EXCL marker)."""
    code = (
        "import os, sys\nfrom daemonkit import PidFile, AlreadyRunning\n"
        "path, marker = sys.argv[1], sys.argv[2]\n"
        "held = 0\n"
        "for _ in range(150):\n"
        "    p = PidFile(path)\n"
        "    try:\n"
        "        p.acquire(timeout=5)\n"
        "    except AlreadyRunning:\n"
        "        continue\n"
        "    os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))\n"
        "    os.unlink(marker)\n"
        "    held += 1\n"
        "    p.release()\n"
        "print(held)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    argv = [sys.executable, "-c", code, str(tmp_path / "app.pid"), str(tmp_path / "marker")]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) for _ in range(4)
    ]
    try:
        results = [proc.communicate(timeout=50) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    for (out, err), proc in zip(results, procs):
        assert proc.returncode == 0, err.decode()
        assert int(out) == 150


def test_without_proc_the_holder_is_believed_only_from_a_safe_file(
    locked_pidfile: tuple[Path, subprocess.Popen[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from daemonkit import _posix

    path, daemon = locked_pidfile
    monkeypatch.setattr(_posix, "HAS_PROC", False)  # as on BSD or macOS: no fdinfo, no /proc/locks
    assert holder_pid(path) == daemon.pid
    os.chmod(path, 0o666)
    with pytest.raises(PidFileError, match="does not hold its lock"):
        is_running(path)


@root_only
@pytest.mark.timeout(30)
def test_a_dropped_daemon_exits_0_on_sigterm_beside_its_root_owned_pidfile(public: Path) -> None:
    """Item 17 end to end: daemonize(user="nobody") with the pidfile in root's
    directory; SIGTERM; the daemon's real exit status, seen by a subreaper."""
    import json

    here = Path(__file__).parent
    marker = public / "marker"
    marker.mkdir()
    os.chown(marker, NOBODY, NOBODY)  # the body writes its marks as nobody
    pidfile, err, statuses = public / "app.pid", public / "err.log", public / "statuses"
    config = {
        "marker": str(marker),
        "options": {"pidfile": str(pidfile), "user": "nobody", "stderr": str(err), "working_directory": "/"},
    }
    reaper = subprocess.Popen(
        [
            sys.executable,
            str(here / "reaper.py"),
            str(statuses),
            "--",
            PYTHON,
            str(here / "app.py"),
            json.dumps(config),
        ]
    )
    try:
        pid = int(wait_for(lambda: (marker / "pid").exists() and (marker / "pid").read_text(), what="daemon"))
        os.kill(pid, signal.SIGTERM)
        assert reaper.wait(timeout=20) == 0
    finally:
        reaper.kill()
        reaper.wait()
    assert f"{pid} 0" in statuses.read_text().splitlines()
    assert "Traceback" not in err.read_text()
    assert (marker / "finally").exists() and (marker / "atexit").exists()
    assert pidfile.exists() and not is_running(pidfile)  # left, and stale


@root_only
def test_sighup_does_not_reopen_a_log_replaced_by_a_symlink(launcher: Launcher, tmp_path: Path) -> None:
    target = victim(tmp_path)
    log, rotated = tmp_path / "out.log", tmp_path / "out.log.1"
    pid = launcher.start(options={"stdout": str(log), "stderr": str(log)})
    os.rename(log, rotated)
    os.symlink(target, log)  # in place of the log, before the reopen
    os.kill(pid, signal.SIGHUP)
    wait_for(lambda: launcher.mark("reload"), what="the reload")
    assert target.read_bytes() == VICTIM
    text = rotated.read_text()  # the daemon kept its old file and said why
    assert f"daemonkit: not reopened: stdout file {log}: is a symbolic link; refusing to follow it" in text
    assert "reloaded" in text and "Traceback" not in text
    assert alive(pid)


def test_a_daemon_that_dies_before_writing_its_pid_is_not_running(tmp_path: Path) -> None:
    """Seen while the file is locked and still empty, a holder that dies is
    "not running" at once, not "locked but holds no PID" 2 s later. The
    holder dies once the reader has the file open and waits for its PID
    (in time.sleep, per /proc/PID/task/TID/syscall)."""
    import threading

    path = tmp_path / "app.pid"
    code = (
        "import os, sys\nfrom daemonkit import PidFile\n"
        "PidFile(sys.argv[1]).lock(); print('locked', flush=True); sys.stdin.readline()\n"
        "import platform\n"
        "proc = f'/proc/{sys.argv[2]}'\n"
        "nanosleep = {'x86_64': '230', 'aarch64': '115'}.get(platform.machine())\n"
        "def opened():\n"
        "    fds = os.listdir(f'{proc}/fd')\n"
        "    return any(os.path.realpath(f'{proc}/fd/{n}') == sys.argv[1] for n in fds)\n"
        "def sleeping():  # the reader waits in its grace loop (time.sleep)\n"
        "    for task in os.listdir(f'{proc}/task'):\n"
        "        try:\n"
        "            if open(f'{proc}/task/{task}/syscall').read().split()[0] == nanosleep:\n"
        "                return True\n"
        "        except (OSError, IndexError):\n"
        "            pass\n"
        "    return nanosleep is None\n"
        "while not (opened() and sleeping()):\n"
        "    pass\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(path), str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    results: list[object] = []
    try:
        assert holder.stdin is not None and holder.stdout is not None
        assert holder.stdout.readline() == b"locked\n"
        reader = threading.Thread(target=lambda: results.append(_outcome(path)))
        holder.stdin.write(b"go\n")
        holder.stdin.flush()
        reader.start()
        assert holder.wait() == 0  # blocking: this thread must not be in time.sleep too
        reader.join(10)
    finally:
        holder.kill()
        holder.wait()
        holder.stdin.close()  # type: ignore[union-attr]
        holder.stdout.close()  # type: ignore[union-attr]
    assert results == [False]


def _outcome(path: Path) -> object:
    try:
        return is_running(path)
    except PidFileError as exc:
        return exc
