import os
import time

import daemon

STATE = os.environ["CORPUS_STATE"]

with daemon.DaemonContext(detach_process=False, working_directory=STATE):
    with open("pid", "w") as f:
        f.write(str(os.getpid()))
    while True:
        time.sleep(1)
