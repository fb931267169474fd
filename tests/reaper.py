"""``python reaper.py OUT -- CMD...``: run CMD as a child subreaper.

Orphaned daemons are re-parented to this process instead of init, so their
real exit status can be collected. Each reaped child is appended to OUT as
"PID STATUS" (STATUS: exit code, or -SIGNUM); the reaper exits when no
children remain.
"""

from __future__ import annotations

import ctypes
import os
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
