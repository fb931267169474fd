import os
import time

import daemon

STATE = os.environ["CORPUS_STATE"]
jail = os.path.join(STATE, "jail")
os.mkdir(jail)

with daemon.DaemonContext(chroot_directory=jail):
    with open("/pid", "w") as f:  # inside the jail
        f.write(str(os.getpid()))
    while True:
        time.sleep(1)
