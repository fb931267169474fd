"""The python-daemon corpus under real python-daemon and under
daemonkit.compat: every observable difference must be documented in
docs/migration.md, so that a new one cannot slip in unnoticed."""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from support import (
    alive,
    clean_env,
    kill_everything_under,
    proc_fds,
    proc_stat,
    proc_status,
    processes_mentioning,
    signal_set,
    wait_for,
)

HERE = Path(__file__).parent
ROOT = HERE.parent
CORPUS = sorted((HERE / "compat_corpus").glob("s*.py"))
# Scripts whose names end in _as_root need root; those with "uid" drop to nobody.
RESTARTED = {"s04_timeout_pidlockfile", "s17_open_except_already_locked"}
# Sent SIGHUP after the snapshot; the file the handler writes, if it has one.
HANGUP: dict[str, str | None] = {
    "s03_signal_map": "reloaded",
    "s20_sighup_default": None,
    "s21_signal_map_method_names": "reloaded",
}
IMPLEMENTATIONS = {"python-daemon": str(ROOT), "daemonkit": f"{HERE / 'compat_shim'}:{ROOT}"}


def documented_differences() -> set[str]:
    text = (ROOT / "docs" / "migration.md").read_text()
    section = text.split("## Every observable difference", 1)[1].split("\n## ", 1)[0]
    first_cells = re.findall(r"^\| (`[^|]+) \|", section, re.MULTILINE)
    return {key for cell in first_cells for key in re.findall(r"`([a-z0-9_]+)`", cell)}


class Run:
    """One corpus script under one implementation, observed from outside."""

    def __init__(self, script: Path, implementation: str, scratch: Path) -> None:
        self.script, self.scratch = script, scratch
        # Outside root's private pytest directories, so that a daemon that
        # drops to nobody can still write its PID file there: sticky, as
        # /tmp, so that root still trusts the directory for a pidfile.
        self.state = Path(tempfile.mkdtemp(prefix="daemonkit-corpus-", dir="/tmp"))
        os.chmod(self.state, 0o1777 if "uid" in script.name else 0o755)
        self.env = clean_env(CORPUS_STATE=str(self.state), PYTHONPATH=IMPLEMENTATIONS[implementation])
        self.pid_file = self.state / ("jail/pid" if "chroot" in script.name else "pid")

    def launch(self, tag: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
        statuses, stderr = self.scratch / f"statuses.{tag}", self.scratch / f"stderr.{tag}"
        with open(stderr, "wb") as err:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    str(HERE / "reaper.py"),
                    str(statuses),
                    "--",
                    sys.executable,
                    str(self.script),
                ],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                cwd=self.state,
            )
        return proc, statuses, stderr

    def observe(self) -> dict[str, Any]:
        reaper, statuses, stderr = self.launch("first")
        try:
            return self._observe(reaper, statuses, stderr)
        finally:
            kill_everything_under(self.state)
            for pid in processes_mentioning(str(self.script)):
                os.kill(pid, signal.SIGKILL)
            reaper.kill()
            reaper.wait()
            shutil.rmtree(self.state, ignore_errors=True)

    def _observe(self, reaper: subprocess.Popen[bytes], statuses: Path, stderr: Path) -> dict[str, Any]:
        # Until the daemon writes its PID, or every process is gone (the
        # reaper exits with its last child): it never came up, and the
        # launcher's status and message tell why.
        wait_for(lambda: self.written_pid() or reaper.poll() is not None, what="the daemon or its failure")
        started = self.written_pid()
        pid = int(started) if started else 0
        seen: dict[str, Any] = {"started": bool(pid)}
        if pid and alive(pid):
            try:
                snapshot = self.snapshot(pid)
                launcher, parent = _launcher_pid(statuses), proc_stat(pid)["ppid"]
                names = {reaper.pid: "the reaper", launcher: "the launcher"}
                snapshot["parent"] = names.get(parent, "other")
                seen.update(snapshot)
            except (FileNotFoundError, ProcessLookupError):
                pass  # it exited while we looked (s10 ends by itself): as if we came too late
        if _launcher_pid(statuses) == pid:
            seen["launcher_exit"] = "is the daemon"
        else:
            seen["launcher_exit"] = wait_for(lambda: _launcher_status(statuses), timeout=10, what="launcher")[
                1
            ]
        seen["launcher_stderr_lines"] = len(stderr.read_bytes().splitlines())
        if self.script.stem in HANGUP and pid and alive(pid):
            self.hang_up(pid, HANGUP[self.script.stem])
        if self.script.stem in RESTARTED and pid and alive(pid):
            seen.update(self.restarts(pid))
        if pid and alive(pid):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:  # it exited on its own meanwhile
                pass
        assert reaper.wait(timeout=15) == 0
        seen["daemon_exit"] = _statuses(statuses).get(pid)
        seen["files"] = self.files()
        return seen

    def written_pid(self) -> str:
        """What the daemon wrote in its pid file, "" before it did."""
        try:
            return self.pid_file.read_text()
        except FileNotFoundError:
            return ""

    def snapshot(self, pid: int) -> dict[str, Any]:
        info, status = proc_stat(pid), proc_status(pid)
        return {
            "session_leader": info["sid"] == pid,
            "tty": info["tty_nr"],
            "cwd": self.normal(os.readlink(f"/proc/{pid}/cwd")),
            "umask": status["Umask"],
            "fds": sorted(self.normal(target) for target in proc_fds(pid).values()),
            "uid": status["Uid"].split()[0],
            "gid": status["Gid"].split()[0],
            "groups": status["Groups"],
            "sigign": sorted(signal_set(status["SigIgn"])),
            "sigblk": sorted(signal_set(status["SigBlk"])),
            "core_limit": _core_limit(pid),
        }

    def hang_up(self, pid: int, handled: str | None) -> None:
        """SIGHUP, then wait until the handler's file appears or the daemon is gone."""
        os.kill(pid, signal.SIGHUP)
        wait_for(
            lambda: not alive(pid) or (handled is not None and (self.state / handled).exists()),
            what="the daemon to handle SIGHUP or die of it",
        )

    def restarts(self, pid: int) -> dict[str, Any]:
        """A second start while running, then a start after kill -9."""
        launched: list[subprocess.Popen[bytes]] = []
        try:
            second, statuses, _ = self.launch("second")
            launched.append(second)
            code = wait_for(lambda: _launcher_status(statuses), timeout=10, what="the second launcher")[1]
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: not alive(pid), what="kill -9")
            self.pid_file.unlink()
            third, _, _ = self.launch("third")
            launched.append(third)
            wait_for(
                lambda: self.written_pid() or third.poll() is not None, what="the restart or its failure"
            )
            restarted = bool(self.written_pid())
        finally:
            for proc in launched:
                proc.kill()
                proc.wait()
        return {"second_launcher_exit": code, "starts_after_kill_9": restarted}

    def files(self) -> list[tuple[str, str, str]]:
        found = []
        for path in sorted(self.state.rglob("*")):
            if path.is_file() and path.name != "pid":
                mode = oct(stat.S_IMODE(path.stat().st_mode))
                text = re.sub(rb"\d+", b"N", path.read_bytes()).decode(errors="replace")
                found.append((str(path.relative_to(self.state)), mode, text))
        return found

    def normal(self, target: str) -> str:
        target = target.replace(str(self.state), "$STATE").replace(str(self.scratch), "$SCRATCH")
        return re.sub(r"^(socket|pipe|anon_inode):.*", r"\1", target)


def _statuses(path: Path) -> dict[int, int]:
    if not path.exists():
        return {}
    lines = [line.split() for line in path.read_text().splitlines() if not line.startswith("launcher")]
    return {int(pid): int(code) for pid, code in lines}


def _launcher_pid(path: Path) -> int | None:
    lines = path.read_text().splitlines() if path.exists() else []
    return next((int(line.split()[1]) for line in lines if line.startswith("launcher")), None)


def _launcher_status(path: Path) -> tuple[int, int] | None:
    pid, codes = _launcher_pid(path), _statuses(path)
    return (pid, codes[pid]) if pid in codes else None


def _core_limit(pid: int) -> str:
    with open(f"/proc/{pid}/limits") as f:
        return next(line for line in f if line.startswith("Max core file size")).split()[4]


@pytest.fixture(scope="module")
def documented() -> set[str]:
    return documented_differences()


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "script",
    CORPUS,
    ids=lambda p: p.stem,
)
def test_corpus_behaves_alike_or_as_documented(script: Path, tmp_path: Path, documented: set[str]) -> None:
    if script.stem.endswith("_as_root") and os.geteuid() != 0:
        pytest.skip("needs root")
    results = {}
    for impl in IMPLEMENTATIONS:
        scratch = tmp_path / impl
        scratch.mkdir()
        results[impl] = Run(script, impl, scratch).observe()
    before, after = results["python-daemon"], results["daemonkit"]
    differences = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
    undocumented = differences - documented
    assert not undocumented, {key: (before.get(key), after.get(key)) for key in undocumented}
    for key, value in IMPROVEMENTS.get(script.stem, {"started": True}).items():
        assert after[key] == value, (key, after[key])


# What daemonkit.compat must do, whatever python-daemon did.
IMPROVEMENTS: dict[str, dict[str, Any]] = {
    "s04_timeout_pidlockfile": {"started": True, "second_launcher_exit": 1, "starts_after_kill_9": True},
    "s13_attributes": {"started": True, "umask": "0027", "daemon_exit": 0},
    "s14_attributes_uid_gid_as_root": {"started": True, "uid": "65534", "gid": "65534"},
    # A migrating user must get a daemon that runs and exits 0, in both layouts.
    "s15_uid_gid_pidfile_root_dir_as_root": {"started": True, "uid": "65534", "daemon_exit": 0},
    "s16_uid_gid_pidfile_service_dir_as_root": {"started": True, "uid": "65534", "daemon_exit": 0},
    # The launcher itself catches lockfile.AlreadyLocked and exits 3.
    "s17_open_except_already_locked": {
        "started": True,
        "second_launcher_exit": 3,
        "starts_after_kill_9": True,
    },
    "s20_sighup_default": {"started": True, "daemon_exit": -1},
    "s09_chroot_as_root": {"started": True, "cwd": "$STATE/jail"},
    "s11_sigterm_cleanup": {
        "daemon_exit": 0,
        "files": [("atexit", "0o644", "atexit ran\n"), ("finally", "0o644", "finally ran\n")],
    },
    "s12_missing_working_directory": {"started": False, "launcher_exit": 1, "launcher_stderr_lines": 1},
}
