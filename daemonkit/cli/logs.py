"""``daemonkit logs NAME [-n N] [-f]``: a daemon's log, running or not."""

from __future__ import annotations

import os
import sys

from .common import PROG, fail, pidfile_of
from .parse import Option

TYPE_CHECKING = False  # see daemonkit/__init__.py
if TYPE_CHECKING:
    from argparse import Namespace as Args


def _short(option: Option) -> Option:
    """-n and -f, as tail spells them: the table's options are long ones."""
    option.dest = option.flag.lstrip("-")
    return option


OPTIONS = (
    Option("--pidfile", "instead of NAME"),
    _short(Option("-n", "how many lines (default 10)", metavar="N", convert=int, default=10)),
    _short(Option("-f", "then follow the log, across rotations, until Ctrl-C", metavar=None)),
)


def log_path(pidfile: str) -> str:
    """Where the daemon's output goes: the path its record names (a
    supervisor's log, or start's --log, --stdout or --stderr), else
    NAME.log beside the pidfile, as start's default."""
    from . import records

    recorded = records.read_for_display(pidfile)
    options = recorded.get("spawn")
    options = options if isinstance(options, dict) else {}
    for candidate in (recorded.get("log"), options.get("stdout"), options.get("stderr")):
        if isinstance(candidate, str) and os.path.isabs(candidate):
            return candidate
    return pidfile.removesuffix(".pid") + ".log"


def cmd_logs(args: Args) -> int:
    from daemonkit import logs

    name, pidfile = pidfile_of(args)
    if args.n < 0:
        return fail(f"invalid -n {args.n}: give a number of lines, 0 or more", 2)
    path = log_path(pidfile)
    out = sys.stdout.buffer
    try:
        if not args.f:
            if not os.path.lexists(path) and not os.path.lexists(path + ".1"):
                return fail(f"{name}: no log at {path}; see '{PROG} status {name}'", 1)
            out.write(b"".join(line + b"\n" for line in logs.tail(path, args.n)))
            out.flush()
            return 0
        try:
            for chunk in logs.follow(path, args.n):
                out.write(chunk)
                out.flush()
        except KeyboardInterrupt:  # Ctrl-C is how -f ends
            return 0
    except BrokenPipeError:  # `daemonkit logs NAME | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 0
