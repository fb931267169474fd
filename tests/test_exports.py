import pickle

import pytest

import daemonkit
from daemonkit import AlreadyRunning, DaemonError, NotifyError, PidFileError, StartupError, StopError


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
        "listen_fds",
        "listen_fds_with_names",
        "notify",
        "read_pid",
        "ready",
        "reload",
        "reloading",
        "run",
        "service_unit",
        "spawn",
        "status",
        "stop",
        "stopping",
        "watchdog_interval",
        "watchdog_ping",
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
        StopError(42, "pid 42 is still alive after SIGKILL"),
        NotifyError("/run/systemd/notify", "Connection refused"),
    ],
)
def test_errors_pickle_with_their_data(error: DaemonError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)


def test_error_hierarchy() -> None:
    assert issubclass(AlreadyRunning, DaemonError)
    assert issubclass(PidFileError, ValueError)
    assert StartupError("x", 0).exit_status == 1
    assert "already running (pid 42)" in str(AlreadyRunning("/p", 42))


def test_ready_without_a_daemon_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert daemonkit.ready() is None
    assert daemonkit.ready() is None
