# A privilege drop with a pidfile in a directory the service user owns,
# the layout python-daemon users have (/run/app owned by the service user).
import os
import time

import daemon
import daemon.pidfile

STATE = os.environ["CORPUS_STATE"]
run = os.path.join(STATE, "run")
os.mkdir(run, 0o755)
os.chown(run, 65534, 65534)

with daemon.DaemonContext(
    uid=65534, gid=65534, pidfile=daemon.pidfile.TimeoutPIDLockFile(os.path.join(run, "app.pid"), 1)
):
    with open(os.path.join(STATE, "pid"), "w") as f:
        f.write(str(os.getpid()))
    while True:
        time.sleep(1)
