# The default signal_map does not name SIGHUP: the test sends one.
import os
import time

import daemon

STATE = os.environ["CORPUS_STATE"]

with daemon.DaemonContext(working_directory=STATE):
    with open("pid", "w") as f:
        f.write(str(os.getpid()))
    while True:
        time.sleep(1)
