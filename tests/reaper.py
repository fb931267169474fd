"""``python reaper.py OUT -- CMD...``: run CMD as a child subreaper.

Orphaned daemons are re-parented to this process instead of init, so their
real exit status can be collected. Each reaped child is appended to OUT as
"PID STATUS" (STATUS: exit code, or -SIGNUM); the reaper exits when no
children remain. CMD starts with every signal at its default action and
none blocked, as from a fresh shell, whatever the test run inherited.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_CHILD_SUBREAPER = 36

out, command = sys.argv[1], sys.argv[3:]
if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed")
first = os.fork()
if first:
    with open(out, "a") as f:
        f.write(f"launcher {first}\n")
if first == 0:
    try:
        # exec keeps ignored signals and the mask (signal(7)): under `nohup
        # pytest` SIGHUP would stay ignored in a program that leaves it
        # alone, as python-daemon does, and the corpus would not show its
        # default action.
        for sig in signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}:
            try:
                signal.signal(sig, signal.SIG_DFL)
            except OSError:  # reserved by the C library (32, 33 on glibc)
                pass
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.execv(command[0], command)
    finally:
        os._exit(127)
while True:
    try:
        pid, status = os.wait()
    except ChildProcessError:
        break
    code = os.waitstatus_to_exitcode(status)
    with open(out, "a") as f:
        f.write(f"{pid} {code}\n")
