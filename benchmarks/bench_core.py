"""Import time and launch-to-ready of a minimal daemon, against peers.

    python benchmarks/bench_core.py [--runs N]

Launch-to-ready is measured from starting the launcher until both (a) the
launcher has exited and (b) the daemon's body has started (it sends one
datagram to a socket this script holds). daemonkit's launcher waits for
readiness; the bare double fork and python-daemon exit without waiting.
"""

from __future__ import annotations

import argparse
import os
import socket
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
HEADER = "import os, socket, sys\n"
BODY = """
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"up", sys.argv[1])
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


def launch_once(code: str, sock: socket.socket, address: str) -> float:
    start = time.perf_counter()
    launcher = subprocess.Popen([sys.executable, "-c", code, address], env=env())
    sock.recv(16)
    launcher.wait()
    return (time.perf_counter() - start) * 1000


def launch_ms(runs: int, tmp: Path) -> dict[str, float]:
    """Median launch-to-ready per daemon; runs are interleaved so that
    machine noise hits every contender alike."""
    address = str(tmp / "ready.sock")
    samples: dict[str, list[float]] = {name: [] for name in DAEMONS}
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(10)
        for _ in range(runs):
            for name, code in DAEMONS.items():
                samples[name].append(launch_once(code, sock, address))
    return {name: statistics.median(values) for name, values in samples.items()}


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


if __name__ == "__main__":
    main()
