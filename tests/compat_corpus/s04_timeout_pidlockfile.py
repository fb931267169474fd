import os
import time

import daemon
import daemon.pidfile

STATE = os.environ["CORPUS_STATE"]

with daemon.DaemonContext(pidfile=daemon.pidfile.TimeoutPIDLockFile(os.path.join(STATE, "app.pid"), 1)):
    with open(os.path.join(STATE, "pid"), "w") as f:
        f.write(str(os.getpid()))
    while True:
        time.sleep(1)
