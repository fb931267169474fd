# The owner set as attributes after construction.
import os
import time

import daemon

STATE = os.environ["CORPUS_STATE"]

context = daemon.DaemonContext()
context.uid = context.gid = 65534
context.working_directory = STATE
with context:
    with open("pid", "w") as f:
        f.write(str(os.getpid()))
    while True:
        time.sleep(1)
