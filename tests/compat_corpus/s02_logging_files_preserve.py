import logging
import os
import time

import daemon

STATE = os.environ["CORPUS_STATE"]
handler = logging.FileHandler(os.path.join(STATE, "app.log"))
logger = logging.getLogger("app")
logger.addHandler(handler)
logger.setLevel(logging.INFO)
logger.info("starting")

with daemon.DaemonContext(files_preserve=[handler.stream]):
    logger.info("daemon running")
    with open(os.path.join(STATE, "pid"), "w") as f:
        f.write(str(os.getpid()))
    while True:
        time.sleep(1)
