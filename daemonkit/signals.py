"""Signal dispositions for a daemon: reset what was inherited, then install
the daemon's own handlers.

Python runs signal handlers only in the main thread, between bytecodes, so
the handlers here may raise SystemExit (SIGTERM) or call the reload callback
(SIGHUP) without async-signal-safety concerns. Installing them off the main
thread is an error, not a silent no-op.
"""

from __future__ import annotations

from .errors import DaemonError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    from collections.abc import Mapping
    from types import FrameType
    from typing import Any, Callable, NoReturn, Optional, Union

    Handler = Union[Callable[[int, Optional[FrameType]], Any], int, signal.Handlers, None]

# The signal module is imported where it is used: its enums cost ~3 ms,
# paid in the launcher's steps.prepare() before the fork, not at `import
# daemonkit`.


def _set(sig: int, handler: Handler) -> None:
    import signal

    if handler is None:
        handler = signal.SIG_IGN
    try:
        signal.signal(sig, handler)
    except ValueError as exc:
        if "main thread" in str(exc):
            raise DaemonError("signal handlers can only be installed from the main thread") from exc
        raise
    except OSError:  # a signal reserved by the C library (32, 33 on glibc)
        pass


def reset(*, for_exec: bool = False) -> None:
    """Step 4: every handler back to its default and the mask empty.

    For Python code "default" means Python's own start-up state (SIGINT
    raises KeyboardInterrupt, SIGPIPE/SIGXFSZ ignored). Before exec'ing
    another program those two go back to SIG_DFL too: exec keeps SIG_IGN,
    and a program started with SIGPIPE ignored misbehaves in pipelines.
    SIGPIPE and SIGXFSZ stay ignored for Python code because it expects
    BrokenPipeError and EFBIG exceptions, which is how Python starts.
    """
    import signal

    for sig in signal.valid_signals():
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            _set(sig, signal.SIG_DFL)
    if not for_exec:
        _set(signal.SIGINT, signal.default_int_handler)
        for ignored in (signal.SIGPIPE, signal.SIGXFSZ):
            _set(ignored, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _terminate(signum: int, frame: FrameType | None) -> NoReturn:
    # SystemExit unwinds the main thread: finally blocks, context managers
    # and atexit handlers run, and the exit status is 0. A supervising
    # systemd hears STOPPING=1 first.
    from .systemd import notify_quietly

    notify_quietly("STOPPING=1")
    raise SystemExit(0)


def install(
    on_reload: Callable[[], None],
    signal_map: Mapping[int, Handler] | None = None,
) -> None:
    """Step 10: TERM exits cleanly, HUP reloads, job control is ignored:
    SIGTSTP, SIGTTIN and SIGTTOU would stop a daemon that touches a
    terminal (daemon(7))."""
    import signal

    for sig in (signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU):
        _set(sig, signal.SIG_IGN)
    _set(signal.SIGTERM, _terminate)
    _set(signal.SIGHUP, lambda signum, frame: on_reload())
    for number, handler in (signal_map or {}).items():
        _set(number, handler)


def signal_name(sig: int) -> str:
    import signal

    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"
