import os
import time

import daemon

STATE = os.environ["CORPUS_STATE"]

with daemon.DaemonContext(working_directory=STATE, umask=0o027):
    with open("created.txt", "w") as f:
        f.write("created in the working directory\n")
    with open("pid", "w") as f:
        f.write(str(os.getpid()))
    while True:
        time.sleep(1)
