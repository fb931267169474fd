"""Supervision: restart latency and the supervisor's memory, beside peers.

    python benchmarks/bench_supervise.py [--runs N]

Restart latency: an app (sleep) that has been up for 2 s is killed with
SIGKILL; the time until its replacement runs (a new child of the
supervisor exec'ing sleep), median over N runs.

Memory: PSS (/proc/PID/smaps_rollup) of the supervising processes, with 1
and with 10 apps: daemonkit's one supervisor per app (each app's share);
supervisord's single process; PM2's God daemon. supervisord is installed
with pip and PM2 with npm into benchmarks/.cache where they install; a tool
that cannot be installed is left out.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / ".cache"
SLEEP = shutil.which("sleep") or "/bin/sleep"


def pss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Pss:"))


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(word) for word in f.read().split()]
    except OSError:
        return []


def exe(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def sleeping_child(parent: int, not_pid: int = 0, timeout: float = 30.0) -> int:
    """The supervisor's child that runs sleep, other than ``not_pid``: a
    tight loop, so that the measurement adds as little as it can."""
    target = os.path.realpath(SLEEP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in children(parent):
            if child != not_pid and exe(child) == target:
                return child
    raise RuntimeError(f"no sleep under pid {parent} after {timeout} s")


def restart_latency(parent: int, runs: int) -> float:
    samples = []
    app = sleeping_child(parent)
    for _ in range(runs):
        time.sleep(2.0)  # up for 2 s: past every tool's min-uptime / startsecs
        started = time.perf_counter()
        os.kill(app, signal.SIGKILL)
        app = sleeping_child(parent, not_pid=app)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def run(*argv: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Daemonkit:
    name = "daemonkit"

    def __init__(self, tmp: Path) -> None:
        self.env = {**os.environ, "DAEMONKIT_RUNDIR": str(tmp / "dk"), "PYTHONPATH": str(ROOT)}

    def start(self, count: int) -> list[int]:
        pids = []
        for i in range(count):
            name = f"app{i}"
            run(sys.executable, "-m", "daemonkit", "start", "--restart", "always", "--name", name, "--",
                SLEEP, "3600", env=self.env)  # fmt: skip
            pids.append(int(Path(self.env["DAEMONKIT_RUNDIR"], f"{name}.pid").read_text()))
        return pids

    def stop(self, count: int) -> None:
        for i in range(count):
            run(sys.executable, "-m", "daemonkit", "stop", f"app{i}", env=self.env)

    def supervisor_of_first(self, pids: list[int]) -> int:
        return pids[0]


class Supervisord:
    name = "supervisord"

    def __init__(self, tmp: Path, binary: Path) -> None:
        self.tmp, self.binary = tmp, binary

    def start(self, count: int) -> list[int]:
        conf = self.tmp / f"supervisord{count}.conf"
        text = f"[supervisord]\nnodaemon=false\npidfile={self.tmp}/sd{count}.pid\nlogfile={self.tmp}/sd.log\n"
        text += f"[unix_http_server]\nfile={self.tmp}/sd{count}.sock\n"
        for i in range(count):
            text += f"[program:app{i}]\ncommand={SLEEP} 3600\nautorestart=true\nstartsecs=1\n"
        conf.write_text(text)
        run(str(self.binary), "-c", str(conf))
        pidfile = self.tmp / f"sd{count}.pid"
        deadline = time.monotonic() + 10
        while not pidfile.exists() or len(children(int(pidfile.read_text() or 0))) < count:
            if time.monotonic() > deadline:
                raise RuntimeError("supervisord did not start its programs")
            time.sleep(0.05)
        return [int(pidfile.read_text())]

    def stop(self, count: int) -> None:
        pid = int((self.tmp / f"sd{count}.pid").read_text())
        os.kill(pid, signal.SIGTERM)
        while exe(pid):
            time.sleep(0.05)

    def supervisor_of_first(self, pids: list[int]) -> int:
        return pids[0]


class Pm2:
    name = "pm2"

    def __init__(self, tmp: Path, binary: Path) -> None:
        self.binary, self.env = str(binary), {**os.environ, "PM2_HOME": str(tmp / "pm2")}

    def start(self, count: int) -> list[int]:
        for i in range(count):
            run(self.binary, "start", SLEEP, "--name", f"app{i}", "--interpreter", "none", "--", "3600",
                env=self.env)  # fmt: skip
        god = int(Path(self.env["PM2_HOME"], "pm2.pid").read_text())
        sleeping_child(god)
        return [god]

    def stop(self, count: int) -> None:
        run(self.binary, "kill", env=self.env)

    def supervisor_of_first(self, pids: list[int]) -> int:
        return pids[0]


def supervisord_binary() -> Path | None:
    binary = CACHE / "venv" / "bin" / "supervisord"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(CACHE / "venv")], check=False)
        subprocess.run([str(CACHE / "venv" / "bin" / "pip"), "install", "-q", "supervisor"], check=False)
    return binary if binary.exists() else None


def pm2_binary() -> Path | None:
    pm2 = CACHE / "npm" / "node_modules" / ".bin" / "pm2"
    if not pm2.exists() and shutil.which("npm"):
        subprocess.run(["npm", "install", "--silent", "--prefix", str(CACHE / "npm"), "pm2"], check=False)
    return pm2 if pm2.exists() else None


def measure(tool: Daemonkit | Supervisord | Pm2, runs: int) -> dict[str, float]:
    result = {}
    for count in (1, 10):
        pids = tool.start(count)
        try:
            time.sleep(1.0)  # settled
            result[f"pss{count}"] = sum(pss_kb(p) for p in pids) / 1024 / count  # MB per app
            if count == 1:
                result["latency"] = restart_latency(tool.supervisor_of_first(pids), runs)
        finally:
            tool.stop(count)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        tools: list[Daemonkit | Supervisord | Pm2] = [Daemonkit(tmp)]
        supervisord = supervisord_binary()
        if supervisord is not None:
            tools.append(Supervisord(tmp, supervisord))
        else:
            print("supervisord not available (pip failed): left out")
        pm2 = pm2_binary()
        if pm2 is not None:
            tools.append(Pm2(tmp, pm2))
        else:
            print("pm2 not available (no npm): left out")
        results = {tool.name: measure(tool, runs) for tool in tools}
    print(f"| tool | restart latency, median of {runs} | PSS per app, 1 app | PSS per app, 10 apps |")
    print("|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['latency']:.1f} ms | {r['pss1']:.1f} MB | {r['pss10']:.2f} MB |")
    mine = results["daemonkit"]
    for name, r in results.items():
        if name != "daemonkit":
            print(
                f"daemonkit/{name}: restart latency {mine['latency'] / r['latency']:.2f}x, "
                f"PSS with 1 app {mine['pss1'] / r['pss1']:.2f}x, with 10 {mine['pss10'] / r['pss10']:.2f}x"
            )


if __name__ == "__main__":
    main()
