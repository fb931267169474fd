import os

import daemon

STATE = os.environ["CORPUS_STATE"]

with daemon.DaemonContext():
    with open(os.path.join(STATE, "pid"), "w") as f:
        f.write(str(os.getpid()))
    raise RuntimeError("configuration is broken")
