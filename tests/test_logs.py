"""``daemonkit logs``: the last lines across archives, and ``-f`` across
rotations by rename and across logrotate's mv + create, with real writer
and follower processes: no line lost, none repeated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from support import ROOT, Cli, clean_env, wait_for

from daemonkit import logs
from daemonkit.logfile import LogWriter

# A LogWriter in a process of its own, driven line by line on stdin:
# "w START COUNT" writes numbered lines, "r" rotates, "o" reopens, "q"
# quits; each command is acknowledged with "ok".
WRITER = r"""
import sys
from daemonkit.logfile import LogWriter
writer = LogWriter(sys.argv[1], max_size=int(sys.argv[2]), keep=1000)
for command in sys.stdin:
    word, *numbers = command.split()
    if word == "w":
        start, count = map(int, numbers)
        for first in range(start, start + count, 7):  # 7 lines a chunk, as reads come
            last = min(first + 7, start + count)
            writer.write(b"".join(b"line %d\n" % i for i in range(first, last)))
    elif word == "r":
        writer.rotate()
    elif word == "o":
        writer.reopen()
    elif word == "q":
        writer.close()
        break
    sys.stdout.write("ok\n")
    sys.stdout.flush()
"""


class Writer:
    def __init__(self, path: Path, max_size: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(max_size)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=clean_env(PYTHONPATH=str(ROOT)),
        )

    def __call__(self, command: str) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        if command != "q":
            assert self.process.stdout.readline() == "ok\n"
        else:
            assert self.process.wait(timeout=30) == 0

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream:
                stream.close()


class Follower:
    """``daemonkit logs --pidfile P -f -n N`` with its output in files."""

    def __init__(self, tmp_path: Path, pidfile: Path, n: int) -> None:
        self.out, self.err = tmp_path / "follow.out", tmp_path / "follow.err"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "daemonkit", "logs", "--pidfile", str(pidfile), "-f", "-n", str(n)],
                stdout=out,
                stderr=err,
                env=clean_env(PYTHONPATH=str(ROOT)),
            )

    def has_open(self, path: Path) -> bool:
        fds = Path(f"/proc/{self.process.pid}/fd")
        try:
            return any(os.readlink(fd) == str(path) for fd in fds.iterdir())
        except FileNotFoundError:  # an fd closed while we looked
            return False

    def lines(self) -> list[bytes]:
        return self.out.read_bytes().splitlines()

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=30)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@pytest.fixture
def processes() -> Iterator[list[Writer | Follower]]:
    started: list[Writer | Follower] = []
    try:
        yield started
    finally:
        for process in started:
            process.kill()


def numbered(start: int, stop: int) -> list[bytes]:
    return [b"line %d" % i for i in range(start, stop)]


def write_rotated(path: Path, count: int, max_size: int) -> None:
    writer = LogWriter(str(path), max_size=max_size, keep=1000)
    writer.write(b"".join(b"line %d\n" % i for i in range(count)))
    writer.close()


# -- the last lines --------------------------------------------------------


def test_tail_reads_across_archives_oldest_first(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write_rotated(log, 1000, max_size=1000)
    assert len(list(tmp_path.glob("app.log.*"))) > 5
    assert logs.tail(str(log), 250) == numbered(750, 1000)
    assert logs.tail(str(log), 5000) == numbered(0, 1000)
    assert logs.tail(str(log), 0) == []
    assert logs.tail(str(tmp_path / "missing.log"), 10) == []


def test_tail_of_a_file_without_a_final_newline(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"a\nb\nunfinished")
    (tmp_path / "app.log.1").write_bytes(b"old\n")
    assert logs.tail(str(log), 3) == [b"a", b"b", b"unfinished"]
    assert logs.tail(str(log), 4) == [b"old", b"a", b"b", b"unfinished"]


def test_logs_n_across_archives(cli: Cli) -> None:
    cli.rundir.mkdir()
    write_rotated(cli.rundir / "web.log", 500, max_size=600)
    code, out, err = cli("logs", "web", "-n", "120")
    assert (code, err) == (0, "")
    assert out.encode().splitlines() == numbered(380, 500)
    code, out, _ = cli("logs", "web")
    assert out.encode().splitlines() == numbered(490, 500)  # 10 by default
    code, out, _ = cli("logs", "--pidfile", str(cli.rundir / "web.pid"), "-n", "2")
    assert out.encode().splitlines() == numbered(498, 500)


def test_logs_as_a_command(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    write_rotated(run / "web.log", 100, max_size=300)
    result = subprocess.run(
        [sys.executable, "-m", "daemonkit", "logs", "web", "-n", "30"],
        capture_output=True,
        env=clean_env(PYTHONPATH=str(ROOT), DAEMONKIT_RUNDIR=str(run)),
        timeout=30,
    )
    assert (result.returncode, result.stderr) == (0, b"")
    assert result.stdout.splitlines() == numbered(70, 100)


def test_logs_of_a_missing_log_says_so(cli: Cli) -> None:
    code, out, err = cli("logs", "ghost")
    assert code == 1 and out == ""
    assert err.startswith("daemonkit: ghost: no log at ") and err.count("\n") == 1
    code, _, err = cli("logs", "ghost", "-n", "-1")
    assert code == 2 and "Traceback" not in err


def test_logs_of_an_exec_mode_daemon(cli: Cli, tmp_path: Path) -> None:
    script = f"echo one; echo two; echo three >&2; exec {cli.sleep} 60"
    assert cli("start", "--name", "talk", "--", "/bin/sh", "-c", script)[0] == 0
    log = cli.rundir / "talk.log"
    wait_for(lambda: log.read_bytes().count(b"\n") == 3, what="three lines")
    code, out, _ = cli("logs", "talk", "-n", "2")
    assert (code, out) == (0, "two\nthree\n")
    cli("stop", "talk")
    assert cli("logs", "talk", "-n", "1")[1] == "three\n"  # not running: still there


def test_logs_reads_the_log_the_record_names(cli: Cli, tmp_path: Path) -> None:
    custom = tmp_path / "elsewhere.log"
    script = f"echo elsewhere; exec {cli.sleep} 60"
    assert cli("start", "--name", "far", "--log", str(custom), "--", "/bin/sh", "-c", script)[0] == 0
    wait_for(lambda: custom.exists() and custom.read_bytes() == b"elsewhere\n", what="the line")
    assert cli("logs", "far")[1] == "elsewhere\n"
    cli("stop", "far")


# -- following ---------------------------------------------------------------


def start_following(tmp_path: Path, processes: list[Writer | Follower], log: Path, n: int = 0) -> Follower:
    follower = Follower(tmp_path, log.with_suffix(".pid"), n)
    processes.append(follower)
    wait_for(lambda: follower.has_open(log), what="the follower to open the log")
    return follower


def stop_following(follower: Follower, total: int) -> list[bytes]:
    wait_for(lambda: len(follower.lines()) >= total, timeout=30, what=f"{total} lines followed")
    assert follower.interrupt() == 0  # Ctrl-C ends -f with 0
    assert follower.err.read_bytes() == b""  # and no traceback
    return follower.lines()


def test_follow_across_rotations_by_rename(tmp_path: Path, processes: list[Writer | Follower]) -> None:
    log = tmp_path / "app.log"
    writer = Writer(log, max_size=20_000)
    processes.append(writer)
    writer("w 0 0")  # the file exists
    follower = start_following(tmp_path, processes, log)
    writer("w 0 30000")  # ~17 lines a ms and ~20 rotations, while the follower polls
    writer("r")
    writer("w 30000 10000")
    writer("r")
    writer("q")
    assert len(list(tmp_path.glob("app.log.*"))) >= 20
    assert stop_following(follower, 40_000) == numbered(0, 40_000)


def test_follow_across_mv_and_create(tmp_path: Path, processes: list[Writer | Follower]) -> None:
    """logrotate's create mode: mv, create, and the writer keeps writing
    into the moved file until it is told to reopen."""
    log = tmp_path / "app.log"
    writer = Writer(log, max_size=0)
    processes.append(writer)
    writer("w 0 0")
    follower = start_following(tmp_path, processes, log)
    line = 0

    def caught_up() -> None:
        wait_for(lambda: len(follower.lines()) == line, what=f"{line} lines followed")

    for _ in range(4):
        writer(f"w {line} 500")
        line += 500
        caught_up()
        archives = sorted(tmp_path.glob("app.log.*"), key=lambda p: int(p.suffix[1:]), reverse=True)
        for archive in archives:  # as logrotate does: app.log.2 -> app.log.3, ...
            os.rename(archive, log.with_name(f"app.log.{int(archive.suffix[1:]) + 1}"))
        os.rename(log, tmp_path / "app.log.1")
        os.close(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        writer(f"w {line} 500")  # into the moved file: the new one stays empty
        line += 500
        caught_up()
        writer("o")
        writer(f"w {line} 500")
        line += 500
        caught_up()
    writer("q")
    assert stop_following(follower, line) == numbered(0, line)


def test_follow_starts_with_the_last_lines(tmp_path: Path, processes: list[Writer | Follower]) -> None:
    log = tmp_path / "app.log"
    write_rotated(log, 100, max_size=200)
    writer = Writer(log, max_size=200)
    processes.append(writer)
    follower = start_following(tmp_path, processes, log, n=25)
    wait_for(lambda: len(follower.lines()) == 25, what="the last 25 lines")
    writer("w 100 50")
    writer("q")
    assert stop_following(follower, 75) == numbered(75, 150)


def test_follow_waits_for_a_log_that_is_not_there_yet(
    tmp_path: Path, processes: list[Writer | Follower]
) -> None:
    log = tmp_path / "late.log"
    follower = Follower(tmp_path, log.with_suffix(".pid"), 10)
    processes.append(follower)
    writer = Writer(log, max_size=0)
    processes.append(writer)
    writer("w 0 3")
    writer("q")
    assert stop_following(follower, 3) == numbered(0, 3)


def test_logs_reads_a_supervisor_record_s_log(cli: Cli, tmp_path: Path) -> None:
    cli.rundir.mkdir()
    log = tmp_path / "supervised.log"
    log.write_bytes(b"from the supervisor\n")
    record = {"version": 1, "name": "sup", "command": ["x"], "log": str(log), "spawn": {"argv": ["x"]}}
    (cli.rundir / "sup.json").write_text(json.dumps(record))
    assert cli("logs", "sup") == (0, "from the supervisor\n", "")


def test_follow_reads_again_from_the_start_after_copytruncate(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"a\nb\n")
    lines = logs.follow(str(log), 1, interval=0.01)
    try:
        assert next(lines) == b"b\n"  # the generator starts here
        with open(log, "ab") as f:
            f.write(b"c\n")
        assert next(lines) == b"c\n"
        with open(log, "r+b") as f:  # what copytruncate does to the original
            f.truncate(0)
        with open(log, "ab") as f:
            f.write(b"d\n")
        assert next(lines) == b"d\n"
    finally:
        lines.close()


def test_follow_several_archives_behind_during_a_rotation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rotation renames the oldest archive first, so for a moment one
    number in the middle is free. A follower still reading the oldest
    archive must not take that for a rename out of the sequence and skip
    to the live file. The rest of the rotation is done when the follower
    next polls: as another process would, at the worst moment."""
    log = tmp_path / "app.log"

    def name(number: int) -> Path:
        return log.with_name(f"app.log.{number}") if number else log

    def rotate_from(oldest: int, new_line: bytes) -> None:
        for number in range(oldest, -1, -1):
            os.rename(name(number), name(number + 1))
        log.write_bytes(new_line)

    log.write_bytes(b"0\n")
    lines = logs.follow(str(log), 1, interval=0.01)
    try:
        assert next(lines) == b"0\n"  # the follower reads the file with 0
        rotate_from(0, b"1\n")
        rotate_from(1, b"2\n")  # now app.log.2, two archives behind
        os.rename(name(2), name(3))  # the next rotation has begun: no app.log.2

        def rotation_ends(interval: float) -> None:
            if log.read_bytes() != b"3\n":
                rotate_from(1, b"3\n")

        monkeypatch.setattr(logs, "time", SimpleNamespace(sleep=rotation_ends))
        assert next(lines) == b"1\n"  # not 2: the archive in between is read
        assert next(lines) == b"2\n"
        assert next(lines) == b"3\n"
    finally:
        lines.close()
