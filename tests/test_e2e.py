"""The use case daemonkit exists for: a server started from a terminal
keeps serving after the terminal is closed; `node app.js &` does not."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from support import alive, clean_env, free_port, kill_everything_under, proc_stat, wait_for

HERE = Path(__file__).parent
ROOT = HERE.parent


def answers(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
            return str(response.read().decode())
    except OSError:
        return None


def tmux(socket: str, *args: str) -> str:
    return subprocess.run(
        ["tmux", "-L", socket, *args], check=True, capture_output=True, text=True, timeout=10
    ).stdout


@pytest.mark.timeout(90)
def test_daemon_survives_the_terminal_closing_and_a_background_job_does_not(tmp_path: Path) -> None:
    app = tmp_path / "app.js"  # inside tmp_path, so that cleanup finds every node
    app.write_text((HERE / "node_app.js").read_text())
    rundir = tmp_path / "run"
    daemon_port, job_port = free_port(), free_port()
    socket = f"daemonkit-e2e-{os.getpid()}"
    env = clean_env(DAEMONKIT_RUNDIR=str(rundir), PYTHONPATH=str(ROOT))
    daemonkit = f"{shlex.quote(sys.executable)} -m daemonkit"
    try:
        subprocess.run(
            [
                "tmux",
                "-L",
                socket,
                "new-session",
                "-d",
                "-s",
                "e2e",
                "-x",
                "200",
                "-y",
                "50",
                "bash",
                "--norc",
                "--noprofile",
                "-i",
            ],
            check=True,
            env=env,
            timeout=10,
            cwd=tmp_path,
        )
        shell = int(tmux(socket, "display-message", "-p", "-t", "e2e", "#{pane_pid}"))
        tmux(
            socket,
            "send-keys",
            "-t",
            "e2e",
            f"{daemonkit} start --name web --wait-ready tcp:127.0.0.1:{daemon_port}"
            f" -- node app.js {daemon_port}",
            "Enter",
        )
        tmux(socket, "send-keys", "-t", "e2e", f"node app.js {job_port} &", "Enter")
        wait_for(lambda: answers(daemon_port) and answers(job_port), timeout=30, what="both servers")
        pid = int((rundir / "web.pid").read_text())
        # The launcher prints once the port answers: a moment after the server does.
        wait_for(
            lambda: "started web (pid" in tmux(socket, "capture-pane", "-p", "-t", "e2e"),
            what="the launcher's message",
        )

        tmux(socket, "kill-server")  # the terminal closes: its session gets SIGHUP
        wait_for(lambda: not alive(shell), what="the shell's death")
        wait_for(lambda: answers(job_port) is None, what="the background job's death by SIGHUP")

        assert answers(daemon_port) == f"hello from {pid}\n"
        assert proc_stat(pid)["ppid"] != shell
        assert proc_stat(pid)["tty_nr"] == 0
        run = lambda *args: subprocess.run(  # noqa: E731
            [sys.executable, "-m", "daemonkit", *args], capture_output=True, text=True, env=env, timeout=30
        )
        assert run("status", "web").returncode == 0
        stop = run("stop", "web")
        assert stop.returncode == 0 and stop.stdout.startswith(f"stopped web (pid {pid})")
        assert not (rundir / "web.pid").exists()
        assert answers(daemon_port) is None
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=10)
        kill_everything_under(tmp_path)
