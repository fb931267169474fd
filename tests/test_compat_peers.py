"""lockfile's compliance tests and python-daemon's own test suite, from
their sdists (pinned, downloaded on first use and cached), run against
daemonkit.compat through tests/compat_shim. Every peer test that fails must
be listed in docs/migration.md with its reason, and every listed one must
still fail: a new difference fails this test, and so does a stale entry.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parent
PEERS = {"lockfile": "0.12.2", "python-daemon": "3.1.2"}
# What python-daemon's test suite needs besides the standard library.
PEER_TEST_DEPS = {"testtools": "2.9.1", "testscenarios": "0.7.0"}

# python-daemon's tests of its own module helpers and private methods: a
# drop-in need not have them (daemonkit does these steps its own way, and
# tests/test_compat.py compares the steps' results from outside).
OUT_OF_SCOPE = {
    "DaemonContext_get_exclude_file_descriptors_TestCase",
    "DaemonContext_make_signal_handler_TestCase",
    "DaemonContext_make_signal_handler_map_TestCase",
    "_close_file_descriptor_ranges_TestCase",
    "_get_candidate_file_descriptor_ranges_ErrorTestCase",
    "_get_candidate_file_descriptor_ranges_TestCase",
    "change_file_creation_mask_TestCase",
    "change_process_owner_TestCase",
    "change_root_directory_TestCase",
    "change_working_directory_TestCase",
    "close_all_open_files_TestCase",
    "close_file_descriptor_if_open_TestCase",
    "detach_process_context_TestCase",
    "get_maximum_file_descriptors_TestCase",
    "get_stream_file_descriptors_TestCase",
    "is_socket_TestCase",  # deprecated in python-daemon for is_socket_file
    "maxfd_TestCase",
    "prevent_core_dump_TestCase",
    "redirect_stream_TestCase",
    "register_atexit_function_TestCase",
    "set_signal_handlers_TestCase",
}


def cache_dir() -> Path:
    """Where the sdists are kept between runs: ours alone, never shared
    with other users (we may be root)."""
    default = Path(tempfile.gettempdir()) / f"daemonkit-cache-{os.getuid()}"
    base = Path(os.environ.get("DAEMONKIT_TEST_CACHE") or default)
    base.mkdir(mode=0o700, exist_ok=True)
    st = base.lstat()
    if not base.is_dir() or base.is_symlink() or st.st_uid != os.getuid() or st.st_mode & 0o022:
        pytest.fail(
            f"test cache {base} is not a private directory of ours; remove it or set DAEMONKIT_TEST_CACHE"
        )
    return base


def _pip(*args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        capture_output=True,
        text=True,
        timeout=240,
    )
    if result.returncode != 0:
        pytest.fail(
            f"pip {' '.join(args)} failed (is the package registry reachable?):\n{result.stderr[-2000:]}"
        )


def _sdist(cache: Path, name: str, version: str) -> Path:
    target = cache / f"{name}-{version}"
    if target.is_dir():
        return target
    scratch = Path(tempfile.mkdtemp(dir=cache))
    try:
        _pip("download", "--no-binary", ":all:", "--no-deps", f"{name}=={version}", "-d", str(scratch))
        (archive,) = scratch.glob("*.tar.gz")
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(scratch / "x", filter="data")
            else:  # pragma: no cover - Python without extraction filters
                tar.extractall(scratch / "x")  # noqa: S202
        (tree,) = (scratch / "x").iterdir()
        tree.rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _test_deps(cache: Path) -> Path:
    target = cache / ("deps-" + "-".join(f"{n}{v}" for n, v in sorted(PEER_TEST_DEPS.items())))
    if not target.is_dir():
        scratch = Path(tempfile.mkdtemp(dir=cache))
        _pip(
            "install",
            "--no-deps",
            "--target",
            str(scratch),
            *(f"{n}=={v}" for n, v in PEER_TEST_DEPS.items()),
        )
        scratch.rename(target)
    return target


def fetch_peers() -> dict[str, Path]:
    cache = cache_dir()
    with open(cache / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be fetching too
        trees = {name: _sdist(cache, name, version) for name, version in PEERS.items()}
        trees["deps"] = _test_deps(cache)
    return trees


@pytest.fixture(scope="module")
def peer_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    trees = fetch_peers()
    out = tmp_path_factory.mktemp("peers") / "results.json"
    path = [HERE / "compat_shim", ROOT, trees["lockfile"], trees["deps"]]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, path))}
    result = subprocess.run(
        [
            sys.executable,
            str(HERE / "compat_shim" / "run_peer_suites.py"),
            str(out),
            str(trees["lockfile"]),
            str(trees["python-daemon"]),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=out.parent,
        stdin=subprocess.DEVNULL,
    )
    assert out.exists(), result.stderr[-3000:]
    results: dict[str, str] = json.loads(out.read_text())
    return results


def documented_peer_differences() -> set[str]:
    text = (ROOT / "docs" / "migration.md").read_text()
    section = text.split("## python-daemon's and lockfile's own tests", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Za-z0-9_.]+)` \|", section, re.MULTILINE))


def _compare(results: dict[str, Any], prefix: str) -> None:
    ours = {key.removeprefix("test."): outcome for key, outcome in results.items() if key.startswith(prefix)}
    in_scope = {key: outcome for key, outcome in ours.items() if key.split(".")[1] not in OUT_OF_SCOPE}
    failing = {key: outcome for key, outcome in in_scope.items() if outcome not in ("pass", "skip")}
    documented = {
        entry for entry in documented_peer_differences() if entry.startswith(prefix.removeprefix("test."))
    }

    def listed(key: str) -> bool:
        return any(key == entry or key.startswith(entry + ".") for entry in documented)

    new = {key: outcome for key, outcome in failing.items() if not listed(key)}
    assert not new, f"peer tests that fail and are not in docs/migration.md: {json.dumps(new, indent=1)}"
    stale = {
        entry for entry in documented if not any(k == entry or k.startswith(f"{entry}.") for k in failing)
    }
    assert not stale, f"listed in docs/migration.md but passing now (or gone): {sorted(stale)}"


@pytest.mark.timeout(600)
def test_lockfile_compliance_tests_pass_or_are_documented(peer_results: dict[str, str]) -> None:
    compliance = [key for key in peer_results if key.startswith("compliancetest.")]
    assert len(compliance) == 20, compliance  # 10 tests, for PIDLockFile and TimeoutPIDLockFile
    _compare(peer_results, "compliancetest.")


@pytest.mark.timeout(600)
def test_python_daemon_suite_passes_or_is_documented(peer_results: dict[str, str]) -> None:
    suite = [key for key in peer_results if key.startswith("test.test_")]
    assert len(suite) > 150, f"python-daemon's suite did not load: {len(suite)} results"
    for prefix in ("test.test_daemon.", "test.test_pidfile."):
        _compare(peer_results, prefix)
