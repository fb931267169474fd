"""In the supervisor's fork, the last steps before the app's exec.

The app gets its own process group, default signal dispositions and an
empty mask (exec keeps SIG_IGN and the mask; Python ignores SIGPIPE and
SIGXFSZ, RELIABILITY 28), stdout and stderr on the supervisor's log pipe,
no other fd (neither the pidfile lock nor the readiness pipe), and the
app's user and group: the supervisor itself stays the invoking user.
"""

from __future__ import annotations

import os
import signal

from . import _posix

TYPE_CHECKING = False  # see __init__.py
if TYPE_CHECKING:
    from typing import NoReturn

    from .supervision import Supervisor


def exec_app(sup: Supervisor, exec_w: int) -> NoReturn:
    cfg = sup.cfg
    status = 126
    try:
        os.setpgid(0, 0)
        signal.set_wakeup_fd(-1)
        for sig in sup.ignored:  # exec resets the caught ones itself
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.dup2(sup.log_w, 1)
        os.dup2(sup.log_w, 2)
        _posix.close_fds_except([exec_w])  # close-on-exec: EOF tells the exec worked
        env = dict(os.environ)
        if sup.notify is not None:
            env["NOTIFY_SOCKET"] = sup.notify.path
        if cfg.watchdog_sec > 0:
            env["WATCHDOG_USEC"] = str(int(cfg.watchdog_sec * 1e6))
            env["WATCHDOG_PID"] = str(os.getpid())
        if cfg.uid >= 0 or cfg.gid >= 0:
            from .privileges import Credentials, drop

            groups = [int(g) for g in cfg.groups.split(",") if g]
            drop(Credentials(cfg.uid if cfg.uid >= 0 else os.getuid(), cfg.gid, groups))
        status = 127
        os.execve(cfg.executable, cfg.argv, env)
    except BaseException as exc:
        if not isinstance(exc, FileNotFoundError):
            status = 126
        message = f"daemonkit: cannot start {cfg.argv[0] if cfg.argv else '?'}: {exc}\n"
        try:
            os.write(2, message.encode("utf-8", "replace"))
            os.write(exec_w, b"x")
        except OSError:
            pass
    os._exit(status)
