"""What the person who started the daemon sees when something goes wrong:
one line on the launcher's stderr and an exit status, never a traceback for
an expected failure."""

from __future__ import annotations

import os
import sys

from .errors import DaemonError

TYPE_CHECKING = False  # see __init__.py
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any


def describe(exc: BaseException) -> str:
    """One line for the launcher: an OS or daemonkit error as its message,
    anything else with its type, as a traceback's last line would."""
    if isinstance(exc, (DaemonError, OSError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def program_name() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "daemon"


def exit_launcher(status: int, message: str | None = None) -> Any:
    """The launcher's end: one line on stderr if it failed, then _exit.

    os._exit, because the caller's finally blocks and atexit handlers belong
    to the daemon now, not to the launcher.
    """
    from .detach import flush_std_streams

    if message:
        try:
            sys.stderr.write(f"{program_name()}: {message}\n")
        except (OSError, ValueError):
            pass
    flush_std_streams()
    os._exit(status)


def print_uncaught_as_one_line() -> None:
    """If the caller does not catch a launcher-side DaemonError, print it as
    one line and exit 1 instead of dumping a traceback on the user."""
    previous = sys.excepthook

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if isinstance(exc, DaemonError):
            sys.stderr.write(f"{program_name()}: {exc}\n")
            sys.stderr.flush()
            os._exit(1)
        previous(exc_type, exc, tb)

    sys.excepthook = hook
