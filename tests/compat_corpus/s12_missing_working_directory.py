import os
import time

import daemon

STATE = os.environ["CORPUS_STATE"]

with daemon.DaemonContext(working_directory=os.path.join(STATE, "missing")):
    with open(os.path.join(STATE, "pid"), "w") as f:
        f.write(str(os.getpid()))
    while True:
        time.sleep(1)
