"""Start and stop a small node HTTP server with daemonkit and its peers.

    python benchmarks/bench_cli.py [--runs N]

Start: from running the start command until the server answers HTTP.
Stop: from running the stop command until the port is closed.
Resident: memory left running besides the app (PM2's "God Daemon").

daemonkit runs from a fresh virtualenv with a regular install, as a user
would have it. pm2 is installed from npm into benchmarks/.cache when it is
missing; without npm it is left out.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / ".cache"
APP = ROOT / "tests" / "node_app.js"


def run(*argv: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def daemonkit_venv() -> Path:
    venv = CACHE / "venv"
    if not (venv / "bin" / "daemonkit").exists():
        run(sys.executable, "-m", "venv", str(venv))
    # A current pip: the `daemonkit` script that pip before 25 generated
    # imported `re` (~5 ms) before running any daemonkit code.
    run(str(venv / "bin" / "pip"), "install", "-q", "--upgrade", "pip")
    run(str(venv / "bin" / "pip"), "install", "-q", "--force-reinstall", "--no-deps", str(ROOT))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    run(str(venv / "bin" / "python"), "-m", "compileall", "-q", str(venv / "lib"), env=env)
    return venv / "bin" / "daemonkit"


def pm2_binary() -> Path | None:
    pm2 = CACHE / "npm" / "node_modules" / ".bin" / "pm2"
    if not pm2.exists() and shutil.which("npm"):
        subprocess.run(
            ["npm", "install", "--silent", "--prefix", str(CACHE / "npm"), "pm2"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    return pm2 if pm2.exists() else None


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.")
    except OSError:
        return False


def closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def timed(action: Callable[[], object], until: Callable[[], bool]) -> float:
    start = time.perf_counter()
    action()
    deadline = start + 30
    while not until():
        if time.perf_counter() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.0005)
    return (time.perf_counter() - start) * 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Tool:
    name = ""
    resident_kb = 0

    def start(self, port: int) -> None: ...
    def stop(self, port: int) -> None: ...


class Nohup(Tool):
    name = "nohup &"

    def start(self, port: int) -> None:
        subprocess.run(["sh", "-c", f"nohup node {APP} {port} >/dev/null 2>&1 &"], check=True)

    def stop(self, port: int) -> None:
        subprocess.run(["pkill", "-f", f"{APP} {port}$"], check=False)


class Daemonkit(Tool):
    name = "daemonkit"

    def __init__(self, binary: Path, tmp: Path) -> None:
        self.binary, self.env = str(binary), {**os.environ, "DAEMONKIT_RUNDIR": str(tmp / "dk")}

    def start(self, port: int) -> None:
        subprocess.run(
            [
                self.binary,
                "start",
                "--name",
                f"web{port}",
                "--wait-ready",
                f"tcp:127.0.0.1:{port}",
                "--",
                "node",
                str(APP),
                str(port),
            ],
            check=True,
            env=self.env,
            stdout=subprocess.DEVNULL,
        )

    def stop(self, port: int) -> None:
        subprocess.run(
            [self.binary, "stop", f"web{port}"], check=True, env=self.env, stdout=subprocess.DEVNULL
        )


class StartStopDaemon(Tool):
    name = "start-stop-daemon"

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp

    def start(self, port: int) -> None:
        run(
            "start-stop-daemon",
            "--start",
            "--background",
            "--make-pidfile",
            "--pidfile",
            str(self.tmp / f"{port}.pid"),
            "--exec",
            shutil.which("node") or "node",
            "--",
            str(APP),
            str(port),
        )

    def stop(self, port: int) -> None:
        run(
            "start-stop-daemon",
            "--stop",
            "--pidfile",
            str(self.tmp / f"{port}.pid"),
            "--retry",
            "TERM/10/KILL/5",
            "--remove-pidfile",
        )


class Pm2(Tool):
    name = "pm2"

    def __init__(self, binary: Path, tmp: Path) -> None:
        self.binary, self.env = str(binary), {**os.environ, "PM2_HOME": str(tmp / "pm2")}
        run(self.binary, "ping", env=self.env)  # the God Daemon starts once, before the first app
        pid = int((tmp / "pm2" / "pm2.pid").read_text())
        with open(f"/proc/{pid}/status") as f:
            self.resident_kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

    def start(self, port: int) -> None:
        run(self.binary, "start", str(APP), "--name", f"web{port}", "--", str(port), env=self.env)

    def stop(self, port: int) -> None:
        run(self.binary, "stop", f"web{port}", env=self.env)
        run(self.binary, "delete", f"web{port}", env=self.env)

    def close(self) -> None:
        run(self.binary, "kill", env=self.env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        tools: list[Tool] = [Nohup(), Daemonkit(daemonkit_venv(), tmp), StartStopDaemon(tmp)]
        pm2 = pm2_binary()
        if pm2 is not None:
            tools.append(Pm2(pm2, tmp))
        else:
            print("pm2 not available (no npm): left out")
        starts: dict[str, list[float]] = {t.name: [] for t in tools}
        stops: dict[str, list[float]] = {t.name: [] for t in tools}
        try:
            for _ in range(args.runs):  # interleaved, so noise hits everyone alike
                for tool in tools:
                    port = free_port()
                    starts[tool.name].append(timed(partial(tool.start, port), partial(answers, port)))
                    stops[tool.name].append(timed(partial(tool.stop, port), partial(closed, port)))
        finally:
            for tool in tools:
                if isinstance(tool, Pm2):
                    tool.close()
    start = {name: statistics.median(v) for name, v in starts.items()}
    stop = {name: statistics.median(v) for name, v in stops.items()}
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    print(f"median of {args.runs} runs; node {node}")
    print(f"{'tool':20} {'start→serving':>14} {'vs nohup':>9} {'stop→closed':>12} {'resident':>10}")
    for tool in tools:
        print(
            f"{tool.name:20} {start[tool.name]:11.1f} ms {start[tool.name] / start['nohup &']:8.2f}x"
            f" {stop[tool.name]:9.1f} ms {tool.resident_kb / 1024:7.1f} MB"
        )
    if "pm2" in start:
        print(
            f"daemonkit start = {start['daemonkit'] / start['pm2']:.2f}x pm2 start; "
            f"daemonkit stop = {stop['daemonkit'] / stop['pm2']:.2f}x pm2 stop"
        )
    ssd = stop["start-stop-daemon"]
    print(f"daemonkit stop = {stop['daemonkit'] / ssd:.2f}x start-stop-daemon --stop --retry")


if __name__ == "__main__":
    main()
