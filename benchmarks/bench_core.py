"""Import time and launch-to-ready of a minimal daemon, against peers.

    python benchmarks/bench_core.py [--runs N]

Launch-to-ready is measured from starting the launcher until both (a) the
launcher has exited and (b) the daemon's body has started (it writes one
byte to a FIFO this script reads). daemonkit's launcher waits for
readiness; the bare double fork and python-daemon exit without waiting.
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Every contender imports what its body uses at the top, as scripts do, so
# that the time measured is the daemonizing itself: a module imported after
# the fork costs copy-on-write faults, whichever library forked.
HEADER = "import os, sys\n"
BODY = """
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_NONBLOCK)
os.write(fd, b"u")
os.close(fd)
"""

DAEMONS = {
    "bare double fork": HEADER
    + """
if os.fork(): os._exit(0)
os.setsid()
if os.fork(): os._exit(0)
os.chdir("/"); os.umask(0o022)
fd = os.open(os.devnull, os.O_RDWR)
for n in (0, 1, 2): os.dup2(fd, n)
"""
    + BODY,
    "python-daemon": HEADER
    + """
import daemon
with daemon.DaemonContext(umask=0o022):
"""
    + "\n".join("    " + line for line in BODY.strip().splitlines()),
    "daemonkit.compat": HEADER
    + """
from daemonkit import compat as daemon
with daemon.DaemonContext(umask=0o022):
"""
    + "\n".join("    " + line for line in BODY.strip().splitlines()),
    "daemonkit": HEADER
    + """
import daemonkit
with daemonkit.daemonize():
"""
    + "\n".join("    " + line for line in BODY.strip().splitlines()),
}


def env() -> dict[str, str]:
    supervisor = ("NOTIFY_SOCKET", "INVOCATION_ID", "LISTEN_PID")
    result = {k: v for k, v in os.environ.items() if k not in supervisor}
    result["PYTHONPATH"] = str(ROOT)
    result.pop("PYTHONDONTWRITEBYTECODE", None)
    return result


def import_ms(module: str, runs: int) -> float:
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"],
            capture_output=True,
            text=True,
            env=env(),
            check=True,
        ).stderr
        line = [ln for ln in out.splitlines() if ln.rstrip().endswith(f"| {module}")][-1]
        samples.append(int(line.split("|")[1]) / 1000)
    return statistics.median(samples)


def launch_once(code: str, fifo: int, path: str) -> float:
    start = time.perf_counter()
    launcher = subprocess.Popen([sys.executable, "-c", code, path], env=env())
    select.select([fifo], [], [], 10)
    os.read(fifo, 16)
    launcher.wait()
    return (time.perf_counter() - start) * 1000


def launch_ms(runs: int, tmp: Path) -> dict[str, float]:
    """Median launch-to-ready per daemon; runs are interleaved so that
    machine noise hits every contender alike."""
    path = str(tmp / "ready.fifo")
    os.mkfifo(path)
    fifo = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    keep_open = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # no EOF between runs
    samples: dict[str, list[float]] = {name: [] for name in DAEMONS}
    try:
        for _ in range(runs):
            for name, code in DAEMONS.items():
                samples[name].append(launch_once(code, fifo, path))
    finally:
        os.close(keep_open)
        os.close(fifo)
    return {name: statistics.median(values) for name, values in samples.items()}


def interpreter_ms(code: str, runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env(), check=True)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "daemonkit")], env=env(), check=True)
    import_ms("daemonkit", 3)  # warm the caches

    print(f"import time (median of {args.runs})")
    dk, pd = import_ms("daemonkit", args.runs), import_ms("daemon", args.runs)
    compat = import_ms("daemonkit.compat", args.runs)
    print(f"  daemonkit         {dk:6.2f} ms   {dk / pd:.2f}x python-daemon")
    print(f"  daemonkit.compat  {compat:6.2f} ms   {compat / pd:.2f}x python-daemon")
    print(f"  python-daemon     {pd:6.2f} ms")

    print(f"launch-to-ready of a minimal daemon (median of {args.runs})")
    with tempfile.TemporaryDirectory() as tmp:
        times = launch_ms(args.runs, Path(tmp))
    bare, peer = times["bare double fork"], times["python-daemon"]
    for name, ms in times.items():
        print(f"  {name:16} {ms:6.1f} ms   {ms / bare:.2f}x bare   {ms / peer:.2f}x python-daemon")

    print(f"where daemonize()'s extra time goes (median of {args.runs})")
    empty = interpreter_ms("import os, sys", args.runs)
    imported = interpreter_ms("import daemonkit", args.runs)
    prepared = interpreter_ms("import daemonkit.steps as s; s.prepare(s.Plan())", args.runs)
    print(f"  interpreter, os and sys     {empty:6.1f} ms")
    print(f"  + import daemonkit          {imported - empty:+6.1f} ms")
    print(f"  + step 1 (imports signal...) {prepared - imported:+6.1f} ms")
    rest = times["daemonkit"] - bare - (prepared - empty)
    print(f"  + watcher, waiting for READY, steps 4-11 beyond the bare fork's  {rest:+6.1f} ms")


if __name__ == "__main__":
    main()
