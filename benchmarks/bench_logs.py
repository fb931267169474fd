"""Log capture: a producer's output through a pipe into a file, by
``cat > file`` and by daemonkit's LogWriter, and what rotation loses.

    python benchmarks/bench_logs.py [--lines 1000000] [--runs 5] [--dir /dev/shm]

The producer is a small C program (built with cc into benchmarks/.cache;
a Python one without a compiler) writing numbered lines of 100 bytes,
either 655 lines (64 KiB) per write or one line per write. The capture side
is ``cat > file`` (the baseline), or a minimal Python process (``-S -I``,
importing only daemonkit.logfile) reading 64 KiB chunks and handing them to
``LogWriter.write``: the supervisor's loop without the rest of the
supervisor. Throughput is lines per second of wall time, producer start to
capture exit; CPU is the capture process's user + system time less that
of the same process given no input (the interpreter's start).

The rotation runs pace the producer at ~100k lines/s with a 1 MB limit:
LogWriter rotating by itself, and logrotate's copytruncate on ``cat >>``,
forced every ~0.1 s. Every line is then looked for across the files.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / ".cache"

PRODUCER_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
/* producer COUNT LINES_PER_WRITE RATE: numbered 100-byte lines on stdout;
   RATE lines/s (0: as fast as possible), paced per 1000 lines. */
int main(int argc, char **argv) {
    long count = atol(argv[1]), per = atol(argv[2]), rate = atol(argv[3]);
    char *buf = malloc(per * 100);
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long i = 0; i < count;) {
        long n = 0;
        for (; n < per && i < count; n++, i++) {
            snprintf(buf + n * 100, 101, "%08ld ", i);
            memset(buf + n * 100 + 9, 'x', 90);
            buf[n * 100 + 99] = '\n';
        }
        for (long off = 0; off < n * 100;) {
            ssize_t w = write(1, buf + off, n * 100 - off);
            if (w < 0) return 1;
            off += w;
        }
        if (rate && i % 1000 < per) {
            double due = (double)i / rate, elapsed;
            do {
                clock_gettime(CLOCK_MONOTONIC, &now);
                elapsed = (now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9;
                if (elapsed < due) usleep((useconds_t)((due - elapsed) * 1e6));
            } while (elapsed < due);
        }
    }
    return 0;
}
"""

PRODUCER_PY = r"""
import os, sys, time
count, per, rate = map(int, sys.argv[1:4])
start = time.monotonic()
i = 0
while i < count:
    n = min(per, count - i)
    view = memoryview(b"".join(b"%08d %s\n" % (j, b"x" * 90) for j in range(i, i + n)))
    while view:
        view = view[os.write(1, view):]
    i += n
    if rate and i % 1000 < per:
        delay = i / rate - (time.monotonic() - start)
        if delay > 0:
            time.sleep(delay)
"""

# The capture process: the supervisor's read loop, reduced to the log.
CAPTURE = r"""
import os, sys
from daemonkit.logfile import LogWriter
path, max_size, keep, stamps = sys.argv[1:5]
writer = LogWriter(path, max_size=int(max_size), keep=int(keep), timestamps=stamps == "1")
read, write = os.read, writer.write
while True:
    data = read(0, 65536)
    if not data:
        break
    if not write(data):
        while not writer.retry():
            pass
writer.close()
"""


def producer() -> list[str]:
    binary = CACHE / "log_producer"
    if not binary.exists() and shutil.which("cc"):
        CACHE.mkdir(parents=True, exist_ok=True)
        source = CACHE / "log_producer.c"
        source.write_text(PRODUCER_C)
        subprocess.run(["cc", "-O2", "-o", str(binary), str(source)], check=True)
    return [str(binary)] if binary.exists() else [sys.executable, "-c", PRODUCER_PY]


def capture_command(path: Path, max_size: int, keep: int, timestamps: bool) -> list[str]:
    return [sys.executable, "-S", "-I", "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r})\n" + CAPTURE,
            str(path), str(max_size), str(keep), "1" if timestamps else "0"]  # fmt: skip


def run_pipeline(
    produce: list[str], consume: list[str], output: Path | None, ready: Path | None = None
) -> tuple[float, float]:
    """(wall seconds, consumer CPU seconds) of ``produce | consume [> output]``.
    The consumer starts first; the clock starts with the producer, once
    ``ready`` exists (the LogWriter opened its file: the interpreter is up)."""
    read_end, write_end = os.pipe()
    sink_out = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC) if output else subprocess.DEVNULL
    try:
        sink = subprocess.Popen(consume, stdin=read_end, stdout=sink_out)
    finally:
        os.close(read_end)
        if output:
            os.close(sink_out)
    while ready is not None and not ready.exists():
        time.sleep(0.001)
    started = time.monotonic()
    source = subprocess.Popen(produce, stdout=write_end)
    os.close(write_end)
    _, status, usage = os.wait4(sink.pid, 0)
    sink.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    if source.wait() != 0 or sink.returncode != 0:
        raise SystemExit(f"pipeline failed: {produce} | {consume}")
    return wall, usage.ru_utime + usage.ru_stime


def startup_cpu(directory: Path) -> float:
    """The capture process's CPU for no input: its interpreter's start."""
    command = capture_command(directory / "empty.log", 0, 0, False)
    return min(run_pipeline(["true"], command, None)[1] for _ in range(3))


def throughput(lines: int, runs: int, directory: Path) -> list[tuple[str, float, float, float, float]]:
    """Rows: (case, lines/s baseline, lines/s LogWriter, CPU s per 10^6
    lines of cat and of the capture). The best of the runs: on a shared
    machine the slow runs measure the neighbours."""
    produce = producer()
    idle = startup_cpu(directory)
    rows = []
    for per_write, label in ((655, "64 KiB writes"), (1, "a write per line")):
        for timestamps in (False, True):
            base, ours, cat_cpu, cpu = [], [], [], []
            for _ in range(runs):
                command = [*produce, str(lines), str(per_write), "0"]
                wall, used = run_pipeline(command, ["cat"], directory / "cat.log")
                base.append(lines / wall)
                cat_cpu.append(used * 1e6 / lines)
                log = directory / "capture.log"
                wall, used = run_pipeline(command, capture_command(log, 10 * 2**20, 5, timestamps), None, log)
                ours.append(lines / wall)
                cpu.append((used - idle) * 1e6 / lines)
                for file in directory.glob("*.log*"):
                    file.unlink()
            case = label + (", timestamps" if timestamps else "")
            rows.append((case, max(base), max(ours), min(cat_cpu), min(cpu)))
    return rows


def count_lines(files: list[Path], stamped: bool = False) -> tuple[int, int, int, int]:
    """(lines seen, lost, duplicated, split) for lines numbered 0..N-1."""
    seen: dict[int, int] = {}
    split = 0
    for file in files:
        for line in file.read_bytes().splitlines():
            body = line[30:] if stamped else line
            if len(body) != 99 or body[8:9] != b" " or not body[:8].isdigit():
                split += 1
                continue
            number = int(body[:8])
            seen[number] = seen.get(number, 0) + 1
    top = max(seen) + 1 if seen else 0
    lost = sum(1 for i in range(top) if i not in seen)
    duplicated = sum(n - 1 for n in seen.values())
    return len(seen), lost, duplicated, split


def oldest_first(path: Path) -> list[Path]:
    archives = sorted(path.parent.glob(path.name + ".*"), key=lambda p: int(p.suffix[1:]), reverse=True)
    return [*archives, path]


def rotation_logwriter(directory: Path, lines: int, rate: int) -> tuple[int, int, int, int, int]:
    log = directory / "rotating.log"
    command = [*producer(), str(lines), "1", str(rate)]
    run_pipeline(command, capture_command(log, 2**20, 1000, False), None)
    files = oldest_first(log)
    return (len(files) - 1, *count_lines(files))


def rotation_copytruncate(directory: Path, lines: int, rate: int) -> tuple[int, int, int, int, int] | None:
    logrotate = shutil.which("logrotate") or "/usr/sbin/logrotate"
    if not os.path.exists(logrotate):
        return None
    log = directory / "copied.log"
    config = directory / "logrotate.conf"
    config.write_text(f"{log} {{\n    rotate 1000\n    copytruncate\n    missingok\n}}\n")
    read_end, write_end = os.pipe()
    source = subprocess.Popen([*producer(), str(lines), "1", str(rate)], stdout=write_end)
    os.close(write_end)
    with open(log, "ab") as out:
        sink = subprocess.Popen(["cat"], stdin=read_end, stdout=out)
    os.close(read_end)
    rotations = 0
    while sink.poll() is None:
        time.sleep(0.1)
        state = directory / "logrotate.state"
        subprocess.run([logrotate, "--force", "--state", str(state), str(config)], check=False)
        rotations += 1
    source.wait()
    files = oldest_first(log)
    return (rotations, *count_lines(files))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--dir",
        default="/dev/shm" if os.path.isdir("/dev/shm") else None,
        help="where the files go (default /dev/shm: memory, so that disk writeback is not measured)",
    )
    parser.add_argument("--rate", type=int, default=100_000, help="lines/s in the rotation runs")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-logs-", dir=options.dir) as temp:
        directory = Path(temp)
        print(f"{options.lines} lines of 100 bytes, best of {options.runs} runs, into {directory}")
        print()
        print("| case | cat > file | LogWriter | ratio | CPU per 10^6 lines: cat | LogWriter |")
        print("|---|---|---|---|---|---|")
        rows = throughput(options.lines, options.runs, directory)
        for case, base, ours, cat_cpu, cpu in rows:
            print(
                f"| {case} | {base:,.0f} lines/s | {ours:,.0f} lines/s | {ours / base:.2f}x"
                f" | {cat_cpu:.2f} s | {cpu:.2f} s |"
            )
        for plain, stamped in ((rows[0], rows[1]), (rows[2], rows[3])):
            cost = 1 - stamped[2] / plain[2]
            print(f"timestamps cost ({plain[0]}): {cost * 100:.1f} % throughput")
        print()
        rotation_lines = max(options.rate * 3, 300_000)
        print(f"rotation: {rotation_lines} lines, one write each, paced at {options.rate} lines/s")
        print("| how | rotations | lines seen | lost | duplicated | split |")
        print("|---|---|---|---|---|---|")
        results = [
            ("LogWriter, 1 MB, by rename", rotation_logwriter(directory, rotation_lines, options.rate))
        ]
        copied = rotation_copytruncate(directory, rotation_lines, options.rate)
        if copied is not None:
            results.append(("logrotate copytruncate, every 0.1 s", copied))
        for how, (rotations, seen, lost, duplicated, split) in results:
            share = lost / max(1, seen + lost) * 100
            print(f"| {how} | {rotations} | {seen} | {lost} ({share:.2f} %) | {duplicated} | {split} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
