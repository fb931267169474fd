import pickle

import pytest

import daemonkit
from daemonkit import (
    AlreadyRunning,
    DaemonError,
    NotifyError,
    PidFileError,
    StartupError,
    StopError,
    UnlockedPidFile,
)


def test_public_names_are_pinned() -> None:
    assert sorted(daemonkit.__all__) == [
        "AlreadyRunning",
        "DaemonContext",
        "DaemonError",
        "NotifyError",
        "PidFile",
        "PidFileError",
        "StartupError",
        "Status",
        "StopError",
        "UnlockedPidFile",
        "daemon",
        "daemonize",
        "is_running",
        "read_pid",
        "ready",
        "reload",
        "run",
        "spawn",
        "status",
        "stop",
    ]
    for name in daemonkit.__all__:
        assert getattr(daemonkit, name) is not None


def test_importing_any_submodule_never_hides_a_public_name() -> None:
    """Importing daemonkit.X binds X on the package: a module named like a
    public function would replace that function."""
    import importlib
    import pkgutil
    import types

    for module in pkgutil.walk_packages(daemonkit.__path__, "daemonkit."):
        if module.name != "daemonkit.__main__":
            importlib.import_module(module.name)
    hidden = [name for name in daemonkit.__all__ if isinstance(getattr(daemonkit, name), types.ModuleType)]
    assert hidden == []


@pytest.mark.parametrize(
    "error",
    [
        DaemonError("plain"),
        AlreadyRunning("/run/app.pid", 42),
        AlreadyRunning("/run/app.pid"),
        PidFileError("/run/app.pid", "is a symbolic link"),
        StartupError("cannot chdir to /nope", 3),
        StopError("pid 42 is still alive after SIGKILL", (42,)),
        NotifyError(111, "Connection refused", "/run/systemd/notify"),
        NotifyError(None, "only filesystem and abstract (@) sockets are supported", "x"),
        UnlockedPidFile("/run/app.pid", 42),
    ],
)
def test_errors_pickle_with_their_data(error: DaemonError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)


def test_daemonize_is_daemon_context() -> None:
    assert daemonkit.daemonize is daemonkit.DaemonContext


def test_notify_error_is_an_os_error_with_its_errno() -> None:
    error = NotifyError(111, "Connection refused", "/run/systemd/notify")
    assert isinstance(error, OSError)
    assert (error.errno, error.address) == (111, "/run/systemd/notify")


def test_error_hierarchy() -> None:
    assert issubclass(AlreadyRunning, DaemonError)
    assert issubclass(PidFileError, ValueError)
    assert StartupError("x", 0).exit_status == 1
    assert "already running (pid 42)" in str(AlreadyRunning("/p", 42))


def test_ready_without_a_daemon_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert daemonkit.ready() is None
    assert daemonkit.ready() is None


def test_no_private_cpython_module_is_imported() -> None:
    """`_signal`, `_socket` and their kind are CPython's internals: the type
    checker is told one thing while the code gets another."""
    import re
    from pathlib import Path

    ours = {"_posix", "_lockfile", "__future__"}
    package = Path(daemonkit.__file__).parent
    found = []
    for path in package.rglob("*.py"):
        for match in re.finditer(r"^\s*(?:import|from)\s+(_\w+)", path.read_text(), re.M):
            if match.group(1) not in ours:
                found.append(f"{path.relative_to(package)}: {match.group(0).strip()}")
    assert found == []
