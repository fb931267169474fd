import atexit
import os
import time

import daemon

STATE = os.environ["CORPUS_STATE"]


def goodbye():
    with open(os.path.join(STATE, "atexit"), "w") as f:
        f.write("atexit ran\n")


with daemon.DaemonContext():
    atexit.register(goodbye)
    with open(os.path.join(STATE, "pid"), "w") as f:
        f.write(str(os.getpid()))
    try:
        while True:
            time.sleep(1)
    finally:
        with open(os.path.join(STATE, "finally"), "w") as f:
            f.write("finally ran\n")
