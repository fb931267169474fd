"""``python run_peer_suites.py OUT LOCKFILE_SDIST PYTHON_DAEMON_SDIST``

Runs lockfile's compliance tests and python-daemon's own test suite, as
shipped in their sdists, against daemonkit.compat (the `daemon` package on
sys.path is tests/compat_shim/daemon), and writes {test id: outcome} to OUT
as JSON. The peers' files are not changed: only which classes they test.
Run it in its own process: the tests patch os, start threads, and a bug in
compat could make one of them daemonize the runner.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
import unittest
from typing import Any

PER_TEST = 20  # seconds; a lock test that waits forever is a failure, not a hang


def _forbid_fork(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("a peer test tried to fork the test runner")


class _Timeout(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Timeout(f"no result within {PER_TEST} s")


def compliance(sdist: str, results: dict[str, str]) -> None:
    """lockfile's ComplianceTest (nose style: setup(), test_*(), teardown())
    with compat's classes as the class under test."""
    sys.path.insert(0, os.path.join(sdist, "test"))
    import compliancetest

    from daemonkit.compat import pidfile

    for cls in (pidfile.PIDLockFile, pidfile.TimeoutPIDLockFile):
        suite = type(f"Test{cls.__name__}", (compliancetest.ComplianceTest,), {"class_to_test": cls})
        for name in sorted(n for n in dir(suite) if n.startswith("test_")):
            case = suite()
            key = f"compliancetest.{cls.__name__}.{name}"
            signal.alarm(PER_TEST)
            try:
                case.setup()
                try:
                    getattr(case, name)()
                finally:
                    case.teardown()
                results[key] = "pass"
            except Exception:
                results[key] = "fail: " + traceback.format_exc(limit=-2).strip().splitlines()[-1]
            finally:
                signal.alarm(0)


class _Record(unittest.TestResult):
    def __init__(self, results: dict[str, str]) -> None:
        super().__init__()
        self.results = results

    def _set(self, test: Any, outcome: str) -> None:
        self.results[test.id()] = outcome

    def startTest(self, test: Any) -> None:
        super().startTest(test)
        signal.alarm(PER_TEST)

    def stopTest(self, test: Any) -> None:
        signal.alarm(0)
        super().stopTest(test)

    def addSuccess(self, test: Any) -> None:
        self._set(test, "pass")

    def addFailure(self, test: Any, err: Any) -> None:
        self._set(test, "fail: " + self._last_line(err))

    def addError(self, test: Any, err: Any) -> None:
        self._set(test, "error: " + self._last_line(err))

    def addSkip(self, test: Any, reason: str) -> None:
        self._set(test, "skip")

    def addExpectedFailure(self, test: Any, err: Any) -> None:
        self._set(test, "pass")

    def addUnexpectedSuccess(self, test: Any) -> None:
        self._set(test, "fail: unexpected success")

    @staticmethod
    def _last_line(err: Any) -> str:
        lines = "".join(traceback.format_exception_only(err[0], err[1])).strip().splitlines()
        return lines[-1] if lines else repr(err[1])


def python_daemon(sdist: str, results: dict[str, str]) -> None:
    """python-daemon's unittest suite (its `test` package, testscenarios)."""
    sys.path.insert(0, sdist)
    sys.modules.pop("test", None)  # the standard library's regression tests
    suite = unittest.defaultTestLoader.loadTestsFromNames(["test.test_daemon", "test.test_pidfile"])
    suite.run(_Record(results))


def main() -> None:
    out, lockfile_sdist, python_daemon_sdist = sys.argv[1:4]
    os.fork = _forbid_fork
    signal.signal(signal.SIGALRM, _alarm)
    results: dict[str, str] = {}
    try:
        compliance(lockfile_sdist, results)
        python_daemon(python_daemon_sdist, results)
    finally:
        with open(out, "w") as f:
            json.dump(results, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
