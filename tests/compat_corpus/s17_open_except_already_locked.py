# open() inside `except lockfile.AlreadyLocked`, as real programs write it.
import os
import sys
import time

import daemon
import daemon.pidfile
import lockfile

STATE = os.environ["CORPUS_STATE"]

context = daemon.DaemonContext(pidfile=daemon.pidfile.TimeoutPIDLockFile(os.path.join(STATE, "app.pid")))
try:
    context.open()
except (lockfile.AlreadyLocked, lockfile.LockTimeout):
    with open(os.path.join(STATE, "refused"), "a") as f:
        f.write("already running\n")
    sys.exit(3)
try:
    with open(os.path.join(STATE, "pid"), "w") as f:
        f.write(str(os.getpid()))
    while True:
        time.sleep(1)
finally:
    context.close()
