"""Fixtures: every daemon a test starts is killed when the test ends."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import (
    POSIX_FALLBACKS,
    SUPERVISOR_VARS,
    Cli,
    Launcher,
    kill_everything_under,
    missing_tools,
    remove_world_readable_copy,
)


def pytest_sessionstart(session: pytest.Session) -> None:
    missing = missing_tools()
    if missing:
        names = ", ".join(f"{command} (Debian package {package})" for command, package in missing.items())
        raise pytest.UsageError(f"the tests need {names}; tests/run installs them")


@pytest.fixture(scope="session", autouse=True)
def _world_readable_copy_removed() -> Iterator[None]:
    yield
    remove_world_readable_copy()


def _signal_state() -> tuple[dict[int, Any], set[int]]:
    # SIGALRM is pytest-timeout's (timeout_method = "signal"), set per test.
    numbers = [
        sig for sig in signal.valid_signals() if sig not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGALRM)
    ]
    dispositions = {}
    for sig in numbers:
        try:
            dispositions[int(sig)] = signal.getsignal(sig)
        except (OSError, ValueError):  # reserved by the C library
            pass
    return dispositions, set(signal.pthread_sigmask(signal.SIG_BLOCK, []))


@pytest.fixture(autouse=True)
def _signal_state_kept() -> Iterator[None]:
    """Every test leaves this process's signal handlers and mask as it
    found them. Children inherit ignored signals and the mask through
    fork and exec: a leak would make a much later test, one that starts a
    program which relies on a default action, fail instead of this one."""
    before = _signal_state()
    yield
    after = _signal_state()
    changed = {
        sig: (before[0].get(sig), handler)
        for sig, handler in after[0].items()
        if before[0].get(sig) != handler
    }
    assert not changed and after[1] == before[1], (changed, before[1], after[1])


@pytest.fixture(params=sorted(POSIX_FALLBACKS))
def posix_fallback(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once per path of daemonkit._posix: "native", and with
    each capability flag turned off (HAS_PIDFD, HAS_PROC, HAS_CLOSE_RANGE),
    in this process and in the daemons that `launcher` starts."""
    from daemonkit import _posix

    for name, value in POSIX_FALLBACKS[request.param].items():
        monkeypatch.setattr(_posix, name, value)
    return str(request.param)


@pytest.fixture
def launcher(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Launcher]:
    runner = Launcher(tmp_path)
    if "posix_fallback" in request.fixturenames:
        runner.posix = POSIX_FALLBACKS[request.getfixturevalue("posix_fallback")]
    try:
        yield runner
    finally:
        runner.cleanup()


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    monkeypatch.setenv("DAEMONKIT_RUNDIR", str(tmp_path / "run"))
    for var in SUPERVISOR_VARS:
        monkeypatch.delenv(var, raising=False)
    runner = Cli(tmp_path, capsys)
    try:
        yield runner
    finally:
        kill_everything_under(tmp_path)


@pytest.fixture
def public() -> Iterator[Path]:
    """A directory below /tmp that every user can reach, for steps run as
    nobody (tmp_path is root's, 0700); everything started in it is killed."""
    directory = Path(tempfile.mkdtemp(prefix="daemonkit-public-"))
    os.chmod(directory, 0o755)
    try:
        yield directory
    finally:
        kill_everything_under(directory)
        shutil.rmtree(directory)
