# An empty constructor, then every option as an attribute (PEP 3143's style).
import os
import signal
import time

import daemon
import daemon.pidfile

STATE = os.environ["CORPUS_STATE"]
log = open(os.path.join(STATE, "out.log"), "w")  # noqa: SIM115  (open for the daemon's life)

context = daemon.DaemonContext()
context.working_directory = STATE
context.umask = 0o027
context.stdout = log
context.stderr = log
context.files_preserve = [log]
context.pidfile = daemon.pidfile.TimeoutPIDLockFile(os.path.join(STATE, "app.pid"), 2)
context.signal_map = {signal.SIGTERM: "terminate", signal.SIGUSR1: None}
context.detach_process = True
with context:
    print("started", flush=True)
    with open("pid", "w") as f:
        f.write(str(os.getpid()))
    while True:
        time.sleep(1)
