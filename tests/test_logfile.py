"""LogWriter, fed from a real pipe by a real producer process: rotation by
rename keeps every line exactly once, timestamps survive partial reads, and
a full disk blocks the producer and then resumes with nothing lost."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import root_only, wait_for

from daemonkit.errors import UnsafeFileError
from daemonkit.logfile import LogWriter

# Writes argv[1] numbered lines of 100 bytes; argv[2] lines per write, or 0
# for writes of random sizes that cut lines anywhere.
PRODUCER = r"""
import os, random, sys
count, per_write = int(sys.argv[1]), int(sys.argv[2])
lines = b"".join(b"%08d %s\n" % (i, b"x" * 90) for i in range(count))
rng = random.Random(count)
position = 0
while position < len(lines):
    size = 100 * per_write if per_write else rng.randint(1, 9000)
    position += os.write(1, lines[position : position + size])
"""
LINE = re.compile(rb"(\d{8}) x{90}")
STAMP = rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d "


@pytest.fixture
def producers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for process in started:
            process.kill()
            process.wait()
            for stream in (process.stdin, process.stdout):
                if stream:
                    stream.close()


Producers = list[subprocess.Popen[bytes]]


def produce(producers: Producers, count: int, per_write: int = 0) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-c", PRODUCER, str(count), str(per_write)], stdout=subprocess.PIPE
    )
    producers.append(process)
    return process


def pump(process: subprocess.Popen[bytes], writer: LogWriter) -> None:
    """The supervisor's loop, reduced to the log: read, write, until EOF."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    while True:
        data = os.read(fd, 65536)
        if not data:
            break
        assert writer.write(data)
    writer.flush()
    assert process.wait() == 0


def files_oldest_first(path: Path) -> list[Path]:
    archives = sorted(path.parent.glob(path.name + ".*"), key=lambda p: int(p.suffix[1:]), reverse=True)
    return [*archives, path] if path.exists() else archives


def numbers_in(files: list[Path], stamped: bool = False) -> list[int]:
    """The line numbers, in order; every line must be whole."""
    numbers = []
    pattern = re.compile(STAMP + LINE.pattern) if stamped else LINE
    for file in files:
        data = file.read_bytes()
        assert data == b"" or data.endswith(b"\n"), f"{file} ends inside a line"
        for line in data.splitlines():
            match = pattern.fullmatch(line)
            assert match, f"split or damaged line in {file}: {line[:60]!r}"
            numbers.append(int(match.group(1)))
    return numbers


@pytest.mark.parametrize("per_write", [0, 1, 655])
def test_rotation_under_a_fast_writer_keeps_every_line_once_in_order(
    tmp_path: Path, producers: list[subprocess.Popen[bytes]], per_write: int
) -> None:
    log = tmp_path / "app.log"
    count = 50_000  # 5 MB through 64 KiB files: ~75 rotations
    writer = LogWriter(str(log), max_size=65536, keep=200)
    pump(produce(producers, count, per_write), writer)
    writer.close()
    files = files_oldest_first(log)
    assert len(files) >= 21
    assert all(f.stat().st_size <= 65536 for f in files)
    assert numbers_in(files) == list(range(count))  # 0 lost, 0 duplicated, 0 split


def test_rotation_drops_the_oldest_beyond_keep(tmp_path: Path, producers: Producers) -> None:
    log = tmp_path / "app.log"
    writer = LogWriter(str(log), max_size=10_000, keep=3)
    pump(produce(producers, 1000), writer)
    writer.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.log", "app.log.1", "app.log.2", "app.log.3"]
    numbers = numbers_in(files_oldest_first(log))
    assert numbers == list(range(1000 - len(numbers), 1000))  # the newest lines, in order


def test_timestamps_over_a_real_pipe(tmp_path: Path, producers: list[subprocess.Popen[bytes]]) -> None:
    log = tmp_path / "app.log"
    count = 20_000
    writer = LogWriter(str(log), max_size=2**20, keep=10, timestamps=True)
    pump(produce(producers, count), writer)
    writer.close()
    assert numbers_in(files_oldest_first(log), stamped=True) == list(range(count))


def test_a_line_split_over_two_reads_gets_one_timestamp(
    tmp_path: Path, producers: list[subprocess.Popen[bytes]]
) -> None:
    # The producer writes half a line, waits for the test to have read it,
    # then writes the rest: two reads, one line.
    script = (
        "import os\n"
        "os.write(1, b'hello\\nfirst half ')\n"
        "os.read(0, 1)\n"
        "os.write(1, b'second half\\nnext\\n')\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    producers.append(process)
    assert process.stdin is not None and process.stdout is not None
    log = tmp_path / "app.log"
    writer = LogWriter(str(log), timestamps=True)
    assert writer.write(os.read(process.stdout.fileno(), 65536))
    assert re.fullmatch(STAMP + rb"hello\n", log.read_bytes())  # the unfinished line is held back
    process.stdin.write(b"x")
    process.stdin.flush()
    pump(process, writer)
    writer.close()
    lines = log.read_bytes().splitlines()
    assert len(lines) == 3
    assert re.fullmatch(STAMP + rb"first half second half", lines[1])
    assert re.fullmatch(STAMP + rb"next", lines[2])
    offset = time.strftime("%z")
    assert lines[0][23:29] == f"{offset[:3]}:{offset[3:]}".encode()


def test_flush_ends_an_unfinished_line_and_the_next_run_starts_a_new_one(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    writer = LogWriter(str(log), timestamps=True)
    writer.write(b"prompt> ")
    writer.flush()
    writer.write(b"restarted\n")
    writer.close()
    lines = log.read_bytes().splitlines()
    assert [line[30:] for line in lines] == [b"prompt> ", b"restarted"]


@settings(max_examples=100, deadline=None)
@given(
    lines=st.lists(st.integers(min_value=0, max_value=200), max_size=20),
    cuts=st.lists(st.integers(min_value=1, max_value=500), min_size=1, max_size=20),
    max_size=st.sampled_from([0, 8, 64, 256, 1000]),
)
def test_any_chunking_keeps_lines_whole_unless_longer_than_max_size(
    tmp_path_factory: pytest.TempPathFactory, lines: list[int], cuts: list[int], max_size: int
) -> None:
    directory = tmp_path_factory.mktemp("log")
    text = b"".join(b"%d%s\n" % (i, b"y" * length) for i, length in enumerate(lines))
    writer = LogWriter(str(directory / "app.log"), max_size=max_size, keep=1000)
    position = 0
    for cut in cuts * (len(text) // sum(cuts) + 1):
        if position >= len(text):
            break
        writer.write(text[position : position + cut])
        position += cut
    writer.close()
    files = files_oldest_first(directory / "app.log")
    assert b"".join(f.read_bytes() for f in files) == text
    if max_size:
        for file in files:
            data = file.read_bytes()
            assert len(data) <= max_size
            # A file may end inside a line only where that line is too long.
            if not data.endswith(b"\n") and data:
                assert len(data) == max_size and b"\n" not in data


def test_rotate_now_and_reopen_after_a_move(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    writer = LogWriter(str(log))
    writer.write(b"one\ntw")
    writer.rotate()  # at the boundary before the held "tw"
    writer.write(b"o\n")
    assert (tmp_path / "app.log.1").read_bytes() == b"one\n"
    assert log.read_bytes() == b"two\n"
    os.rename(log, tmp_path / "moved")
    writer.write(b"three\n")  # still into the moved file, until reopen
    writer.reopen()
    writer.write(b"four\n")
    assert (tmp_path / "moved").read_bytes() == b"two\nthree\n"
    assert log.read_bytes() == b"four\n"
    # logrotate's create mode: mv, create; then rotate() sees the new file
    # and reopens rather than rotating it away.
    os.rename(log, tmp_path / "app.log.1")
    os.close(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640))
    writer.write(b"five\n")
    writer.rotate()
    writer.write(b"six\n")
    writer.close()
    assert (tmp_path / "app.log.1").read_bytes() == b"four\nfive\n"
    assert log.read_bytes() == b"six\n"
    assert not (tmp_path / "app.log.2").exists()
    assert os.stat(log).st_mode & 0o777 == 0o640  # as logrotate created it


def test_refuses_a_symlink_and_a_fifo(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep\n")
    os.symlink(victim, tmp_path / "link.log")
    with pytest.raises(UnsafeFileError, match="is a symbolic link"):
        LogWriter(str(tmp_path / "link.log"))
    os.mkfifo(tmp_path / "fifo.log")
    with pytest.raises(UnsafeFileError, match="not a regular file"):
        LogWriter(str(tmp_path / "fifo.log"))
    assert victim.read_bytes() == b"keep\n"


# -- a full disk ---------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, unmounted at the end whatever happens."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def blocked_writing_a_pipe(pid: int) -> bool:
    """The process sleeps in write(2) on a pipe (x86-64 and arm64 number
    write 1 and 64: /proc/PID/syscall starts with the number)."""
    with open(f"/proc/{pid}/wchan") as f:
        wchan = f.read()
    with open(f"/proc/{pid}/syscall") as f:
        syscall = f.read().split()[0]
    return "pipe_write" in wchan and syscall in ("1", "64")


def fill(directory: Path, free: int) -> Path:
    """Leave about ``free`` bytes free on the filesystem of directory."""
    filler = directory / "filler"
    vfs = os.statvfs(directory)
    filler.write_bytes(b"\0" * max(0, vfs.f_bavail * vfs.f_frsize - free))
    return filler


@root_only
def test_a_full_disk_blocks_the_app_then_resumes_with_nothing_lost(
    small_disk: Path, producers: list[subprocess.Popen[bytes]]
) -> None:
    log = small_disk / "app.log"
    writer = LogWriter(str(log), max_size=0)
    filler = fill(small_disk, 100_000)
    count = 5000  # 500 kB: more than is free
    process = produce(producers, count)
    assert process.stdout is not None
    fd = process.stdout.fileno()
    while writer.write(os.read(fd, 65536)):
        pass
    assert writer.disk_full
    # We stopped reading: the pipe fills and the producer waits in write().
    wait_for(lambda: blocked_writing_a_pipe(process.pid), what="the producer to block in write")
    assert not writer.retry()  # still full
    filler.unlink()
    assert writer.retry() and not writer.disk_full
    pump(process, writer)
    writer.close()
    assert numbers_in([log]) == list(range(count))


@root_only
def test_a_full_disk_deletes_the_oldest_archive_first(
    small_disk: Path, producers: list[subprocess.Popen[bytes]]
) -> None:
    log = small_disk / "app.log"
    writer = LogWriter(str(log), max_size=300_000, keep=3)
    pump(produce(producers, 4000), writer)  # 400 kB: 300 in app.log.1, 100 in app.log
    assert (small_disk / "app.log.1").exists()
    fill(small_disk, 50_000)
    more = b"".join(b"%08d %s\n" % (i, b"x" * 90) for i in range(4000, 5000))
    assert writer.write(more)  # 100 kB: fits once app.log.1 is gone
    assert not (small_disk / "app.log.1").exists()
    writer.close()
    assert numbers_in([log]) == list(range(3000, 5000))


def test_files_get_their_mode_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        writer = LogWriter(str(tmp_path / "app.log"), max_size=10, keep=2, mode=0o644)
        writer.write(b"0123456\n" * 3)
        writer.close()
    finally:
        os.umask(previous)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"app.log": 0o644, "app.log.1": 0o644, "app.log.2": 0o644}
