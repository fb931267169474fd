import os
import signal
import time

import daemon

STATE = os.environ["CORPUS_STATE"]


def reload_config(signum, frame):
    with open(os.path.join(STATE, "reloaded"), "a") as f:
        f.write("reload\n")


context = daemon.DaemonContext(
    signal_map={signal.SIGTERM: "terminate", signal.SIGHUP: reload_config, signal.SIGUSR1: None}
)
with context:
    with open(os.path.join(STATE, "pid"), "w") as f:
        f.write(str(os.getpid()))
    while True:
        time.sleep(1)
