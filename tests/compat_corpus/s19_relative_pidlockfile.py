# A relative PIDLockFile: python-daemon opens it after the chdir.
import os
import time

import daemon
import daemon.pidfile

STATE = os.environ["CORPUS_STATE"]
work = os.path.join(STATE, "work")
os.mkdir(work)

lock = daemon.pidfile.PIDLockFile("app.pid")
with daemon.DaemonContext(working_directory=work, pidfile=lock):
    with open(os.path.join(STATE, "found"), "w") as f:
        f.write(f"path {lock.path}\n")
        f.write(f"in the working directory: {os.path.exists(os.path.join(work, 'app.pid'))}\n")
        f.write(f"in the launcher's directory: {os.path.exists(os.path.join(STATE, 'app.pid'))}\n")
        f.write(f"locked {lock.is_locked()}, by me {lock.i_am_locking()}, ")
        f.write(f"holds my pid {lock.read_pid() == os.getpid()}\n")
    with open(os.path.join(STATE, "pid"), "w") as f:
        f.write(str(os.getpid()))
    while True:
        time.sleep(1)
