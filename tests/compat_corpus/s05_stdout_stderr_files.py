import os
import sys
import time

import daemon

STATE = os.environ["CORPUS_STATE"]
out = open(os.path.join(STATE, "out.log"), "a+")  # noqa: SIM115 (the daemon keeps it)
err = open(os.path.join(STATE, "err.log"), "a+")  # noqa: SIM115

with daemon.DaemonContext(stdout=out, stderr=err):
    print("to stdout", flush=True)
    print("to stderr", file=sys.stderr, flush=True)
    with open(os.path.join(STATE, "pid"), "w") as f:
        f.write(str(os.getpid()))
    while True:
        time.sleep(1)
