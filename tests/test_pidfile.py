"""PidFile, read_pid and is_running against bad paths, bad contents and races."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import each_posix_path, root_only, wait_for

from daemonkit import AlreadyRunning, PidFile, PidFileError, is_running, read_pid
from daemonkit._posix import pid_max
from daemonkit.pidfile import parse_pid

# Holds an flock on argv[1] and writes argv[2] into it (or its own PID).
HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
if len(sys.argv) > 2 and sys.argv[2] != "-":
    os.ftruncate(fd, 0); os.write(fd, sys.argv[2].encode())
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def holder() -> Iterator[object]:
    procs: list[subprocess.Popen[str]] = []

    def start(path: Path, contents: str = "-") -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(path), contents],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.communicate()  # reaps it and closes the pipes


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


# -- read_pid: strict parsing ------------------------------------------------


@pytest.mark.parametrize("contents", [b"123\n", b"123"])
def test_read_pid_accepts_pid_and_newline(tmp_path: Path, contents: bytes) -> None:
    path = tmp_path / "p.pid"
    path.write_bytes(contents)
    assert read_pid(path) == 123


def test_read_pid_missing_or_empty_is_none(tmp_path: Path) -> None:
    assert read_pid(tmp_path / "missing.pid") is None
    (tmp_path / "empty.pid").write_bytes(b"")
    assert read_pid(tmp_path / "empty.pid") is None


BAD = [
    b"0\n",
    b"-1\n",
    b"1\n",
    b"12abc\n",
    b" 12\n",
    b"12 \n",
    b"1_000\n",
    b"+5\n",
    "١٢\n".encode(),
    b"\x00\n",
    b"12\x00",
    b"18446744073709551616\n",
    b"99999999\n",
    b"12\n\n",
    b"\n",
    b"0012\n",
    b"1" * 5_000_000,
]


@pytest.mark.parametrize("contents", BAD, ids=lambda b: repr(b[:20]))
def test_read_pid_rejects_malformed(tmp_path: Path, contents: bytes) -> None:
    path = tmp_path / "p.pid"
    path.write_bytes(contents)
    with pytest.raises(PidFileError) as info:
        read_pid(path)
    assert str(path) in str(info.value)


@given(st.binary(max_size=40))
def test_parse_pid_over_arbitrary_bytes(data: bytes) -> None:
    allowed = re.fullmatch(rb"[1-9][0-9]*\n?", data) is not None
    try:
        pid = parse_pid(data)
    except PidFileError:
        assert not allowed or int(data) <= 1 or int(data) > pid_max()
        return
    if pid is None:
        assert data == b""
    else:
        assert allowed and 1 < pid <= pid_max() and pid == int(data)


@given(st.integers(min_value=2, max_value=pid_max()))
def test_parse_pid_accepts_every_valid_pid(pid: int) -> None:
    assert parse_pid(b"%d\n" % pid) == pid


# -- bad paths ---------------------------------------------------------------


@each_posix_path
def test_symlink_is_refused_and_target_untouched(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious\n")
    os.chmod(victim, 0o600)
    before = os.stat(victim)
    link = tmp_path / "app.pid"
    link.symlink_to(victim)
    for action in (lambda: PidFile(link).acquire(), lambda: read_pid(link), lambda: is_running(link)):
        with pytest.raises(PidFileError, match="symbolic link"):
            action()
    after = os.stat(victim)
    assert victim.read_bytes() == b"precious\n"
    assert (after.st_mode, after.st_mtime_ns, after.st_size) == (
        before.st_mode,
        before.st_mtime_ns,
        before.st_size,
    )


def test_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "app.pid").mkdir()
    with pytest.raises(PidFileError, match="directory"):
        PidFile(tmp_path / "app.pid").acquire()


@each_posix_path
@pytest.mark.timeout(10)
def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "app.pid"
    os.mkfifo(fifo)
    for action in (lambda: PidFile(fifo).acquire(), lambda: read_pid(fifo), lambda: is_running(fifo)):
        with pytest.raises(PidFileError, match="not a regular file"):
            action()


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PidFileError, match="does not exist"):
        PidFile(tmp_path / "nope" / "app.pid").acquire()
    assert not (tmp_path / "nope").exists()


@root_only
def test_directory_writable_by_others_is_refused_as_root(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(PidFileError, match="writable by other users"):
        PidFile(shared / "app.pid").acquire()
    assert list(shared.iterdir()) == []


@root_only
def test_directory_owned_by_another_user_anywhere_on_the_path_is_refused_as_root(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    (theirs / "run").mkdir(parents=True)
    os.chown(theirs, 65534, 65534)  # its owner could replace "run" with a link anywhere
    with pytest.raises(PidFileError, match=f"directory {theirs} is owned by uid 65534"):
        PidFile(theirs / "run" / "app.pid").acquire()
    assert list((theirs / "run").iterdir()) == []


@root_only
def test_symlinked_directory_is_judged_by_its_target(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)
    with PidFile(tmp_path / "alias" / "app.pid"):
        assert (real / "app.pid").exists()


@root_only
def test_symlink_owned_by_another_user_is_refused_as_root(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)
    os.chown(tmp_path / "alias", 65534, 65534, follow_symlinks=False)  # its owner may repoint it
    with pytest.raises(
        PidFileError, match=f"directory {tmp_path / 'alias'} is a symbolic link owned by uid 65534"
    ):
        PidFile(tmp_path / "alias" / "app.pid").acquire()
    assert list(real.iterdir()) == []


@root_only
def test_symlink_to_a_directory_another_user_owns_is_refused_as_root(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)
    (tmp_path / "alias").symlink_to("../" + tmp_path.name + "/theirs")  # relative, with ".."
    with pytest.raises(PidFileError, match=f"directory {theirs} is owned by uid 65534"):
        PidFile(tmp_path / "alias" / "app.pid").acquire()
    assert list(theirs.iterdir()) == []


@root_only
def test_a_file_on_the_way_is_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(PidFileError, match="file is not a directory"):
        PidFile(tmp_path / "file" / "app.pid").acquire()


@root_only
@pytest.mark.timeout(30)
def test_as_root_the_pidfile_is_opened_in_the_directory_that_was_checked(tmp_path: Path) -> None:
    """No window between check and use: the pidfile is opened relative to
    the fd of its checked directory, never again by its full path: once
    read-write (to write the PID), once read-only (the lock)."""
    trace = tmp_path / "trace"
    script = f"from daemonkit import PidFile\nwith PidFile({str(tmp_path / 'app.pid')!r}): pass"
    subprocess.run(
        ["strace", "-qq", "-e", "trace=openat", "-o", str(trace), sys.executable, "-c", script],
        check=True,
        timeout=20,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    opens = [line for line in trace.read_text().splitlines() if "app.pid" in line]
    assert len(opens) == 2, opens
    for line in opens:
        assert not line.startswith(("openat(AT_FDCWD", "openat(-100")), line
        assert '"app.pid"' in line
    assert sorted("O_RDONLY" in line for line in opens) == [False, True], opens


@root_only
def test_file_owned_by_another_user_is_refused_as_root(tmp_path: Path) -> None:
    path = tmp_path / "app.pid"
    path.write_bytes(b"")
    os.chown(path, 65534, 65534)
    with pytest.raises(PidFileError, match="owned by uid 65534"):
        PidFile(path).acquire()
    assert os.stat(path).st_uid == 65534


@each_posix_path
@root_only
def test_world_writable_pid_is_not_trusted(tmp_path: Path, holder, sleeper) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "app.pid"
    holder(path, f"{sleeper.pid}\n")  # locked by someone, naming an unrelated process
    os.chmod(path, 0o666)
    with pytest.raises(PidFileError, match="does not hold it"):
        is_running(path)
    assert sleeper.poll() is None


def test_hard_link_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"data\n")
    os.link(victim, tmp_path / "app.pid")
    with pytest.raises(PidFileError, match="hard links"):
        PidFile(tmp_path / "app.pid").acquire()
    assert victim.read_bytes() == b"data\n"


# -- locking -----------------------------------------------------------------


@each_posix_path
def test_acquire_writes_pid_with_mode_despite_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        with PidFile(tmp_path / "app.pid") as pidfile:
            assert (tmp_path / "app.pid").read_bytes() == b"%d\n" % os.getpid()
            assert stat.S_IMODE(os.stat(tmp_path / "app.pid").st_mode) == 0o644
            assert pidfile.pid == os.getpid()
            assert is_running(tmp_path / "app.pid")
    finally:
        os.umask(old)
    assert not (tmp_path / "app.pid").exists()


@each_posix_path
def test_second_holder_gets_already_running_and_leaves_file(tmp_path: Path, holder) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "app.pid"
    proc = holder(path)
    path.write_bytes(b"%d\n" % proc.pid)
    before = os.stat(path)
    with pytest.raises(AlreadyRunning) as info:
        PidFile(path).acquire()
    assert info.value.pid == proc.pid and info.value.path == str(path)
    after = os.stat(path)
    assert path.read_bytes() == b"%d\n" % proc.pid
    assert (after.st_ino, after.st_mode, after.st_mtime_ns) == (
        before.st_ino,
        before.st_mode,
        before.st_mtime_ns,
    )


@each_posix_path
def test_stale_file_is_not_running_and_can_be_taken(tmp_path: Path, sleeper) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "app.pid"
    path.write_bytes(b"%d\n" % sleeper.pid)  # a live, unrelated process; no lock
    assert not is_running(path)
    with PidFile(path):
        assert read_pid(path) == os.getpid()
    assert sleeper.poll() is None


@each_posix_path
def test_empty_unlocked_file_is_not_running(tmp_path: Path) -> None:
    (tmp_path / "app.pid").write_bytes(b"")
    assert not is_running(tmp_path / "app.pid")
    assert not is_running(tmp_path / "missing.pid")


@each_posix_path
def test_lock_of_a_killed_holder_is_free(tmp_path: Path, holder) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "app.pid"
    proc = holder(path, "")
    path.write_bytes(b"%d\n" % proc.pid)
    assert is_running(path)
    proc.kill()
    proc.wait()
    assert not is_running(path)
    with PidFile(path):
        pass


@each_posix_path
def test_waiter_never_shares_an_unlinked_inode(tmp_path: Path) -> None:
    """A holder that unlinks on release must not leave a waiter holding the
    dead inode while a newcomer locks a new file (filelock #574)."""
    path = tmp_path / "app.pid"
    first = PidFile(path)
    first.acquire()
    second = PidFile(path)
    waiting = threading.Thread(target=second.acquire, kwargs={"timeout": 10})
    waiting.start()
    first.release()  # unlinks while locked, then unlocks
    waiting.join()
    assert os.stat(path).st_ino == os.fstat(second.fileno()).st_ino
    second.release()


@each_posix_path
def test_release_leaves_a_replaced_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "app.pid"
    pidfile = PidFile(path)
    pidfile.acquire()
    os.unlink(path)
    path.write_bytes(b"someone else's\n")
    pidfile.release()
    assert path.read_bytes() == b"someone else's\n"


@each_posix_path
def test_forked_child_neither_unlinks_nor_unlocks(tmp_path: Path) -> None:
    path = tmp_path / "app.pid"
    pidfile = PidFile(path)
    pidfile.acquire()
    child = os.fork()
    if child == 0:
        try:
            pidfile.release()
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    assert path.exists()
    assert is_running(path)
    pidfile.release()
    assert not path.exists()


@each_posix_path
def test_acquire_timeout_waits_for_the_holder(tmp_path: Path, holder) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "app.pid"
    proc = holder(path)
    pidfile = PidFile(path)
    waiting = threading.Thread(target=pidfile.acquire, kwargs={"timeout": 10})
    waiting.start()
    proc.kill()
    proc.wait()
    waiting.join()
    assert wait_for(lambda: read_pid(path) == os.getpid())
    pidfile.release()


MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 253:1 / / rw,relatime - ext4 /dev/vda rw
40 27 0:45 / /srv/shared rw,relatime - nfs4 server:/export rw
41 40 0:46 / /srv/shared/local rw,relatime - tmpfs tmpfs rw
42 27 0:47 / /mnt/fuse\\040dir rw,relatime - fuse.sshfs host: rw
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/srv/shared/app", "nfs4"),
        ("/srv/shared/local/run", "tmpfs"),
        ("/srv/sharedx", "ext4"),
        ("/mnt/fuse dir/x", "fuse.sshfs"),
        ("/", "ext4"),
    ],
)
def test_filesystem_type_from_mountinfo(tmp_path: Path, path: str, expected: str) -> None:
    from daemonkit._posix import filesystem_type

    (tmp_path / "mountinfo").write_text(MOUNTINFO)
    assert filesystem_type(path, str(tmp_path / "mountinfo")) == expected


@each_posix_path
def test_local_pidfile_gives_no_warning(tmp_path: Path) -> None:
    from daemonkit._posix import NETWORK_FILESYSTEMS, filesystem_type

    fstype = filesystem_type(str(tmp_path))
    assert fstype is not None and not fstype.startswith(NETWORK_FILESYSTEMS)
    with PidFile(tmp_path / "app.pid"):  # filterwarnings=error: a warning would fail here
        pass


@pytest.fixture
def fuse_directory(tmp_path: Path) -> Iterator[Path]:
    """A real FUSE mount (bindfs) of a directory in tmp_path."""
    source, mount = tmp_path / "source", tmp_path / "fuse"
    source.mkdir()
    mount.mkdir()
    subprocess.run(["bindfs", str(source), str(mount)], check=True, timeout=20)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=True, timeout=20)


@each_posix_path
@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="this kernel or container offers no /dev/fuse")
def test_pidfile_on_a_network_or_fuse_filesystem_warns(fuse_directory: Path, posix_fallback: str) -> None:
    """RELIABILITY 15: there an flock may not exclude a daemon on another host."""
    pidfile = PidFile(fuse_directory / "app.pid")
    if posix_fallback == "HAS_PROC":  # no mountinfo to tell: no warning (filterwarnings=error)
        pidfile.acquire()
    else:
        with pytest.warns(
            RuntimeWarning, match=r"is on fuse: its lock may not stop a daemon on another host"
        ):
            pidfile.acquire()
    try:
        assert is_running(fuse_directory / "app.pid")
    finally:
        pidfile.release()
    assert list(fuse_directory.iterdir()) == []
