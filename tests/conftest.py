"""Fixtures: every daemon a test starts is killed when the test ends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import SUPERVISOR_VARS, Cli, Launcher, kill_everything_under


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    runner = Launcher(tmp_path)
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
