# An asyncio program: the event loop starts after open().
import asyncio
import os

import daemon

STATE = os.environ["CORPUS_STATE"]


async def main():
    with open(os.path.join(STATE, "pid"), "w") as f:
        f.write(str(os.getpid()))
    while True:
        await asyncio.sleep(1)


with daemon.DaemonContext(working_directory=STATE):
    asyncio.run(main())
