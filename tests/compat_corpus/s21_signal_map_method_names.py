# signal_map values naming methods of a DaemonContext subclass.
import os
import signal
import time

import daemon

STATE = os.environ["CORPUS_STATE"]


class Service(daemon.DaemonContext):
    def reload(self, signum, frame):
        with open(os.path.join(STATE, "reloaded"), "a") as f:
            f.write(f"reload by {type(self).__name__}.reload\n")


context = Service(working_directory=STATE)
context.signal_map = {signal.SIGTERM: "terminate", signal.SIGHUP: "reload", signal.SIGUSR2: "terminate"}
with context:
    with open("pid", "w") as f:
        f.write(str(os.getpid()))
    while True:
        time.sleep(1)
