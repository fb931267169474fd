import os
import time

import daemon

STATE = os.environ["CORPUS_STATE"]

with daemon.DaemonContext(uid=65534, gid=65534):
    with open(os.path.join(STATE, "pid"), "w") as f:
        f.write(str(os.getpid()))
    while True:
        time.sleep(1)
