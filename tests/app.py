"""A configurable daemon for the tests: ``python app.py CONFIG_JSON``.

CONFIG keys:
  options   keyword arguments for daemonize()
  before    text printed (unflushed) before daemonizing
  threads   start a thread before daemonizing
  catch     catch AlreadyRunning in the launcher and print "caught N"
  decorator use @daemon and return this value from main()
  body      what the daemon does: "sleep" (default), "raise", "exit",
            "return", "print", "ready_then_sleep"
  marker    a directory where the daemon leaves files: finally, atexit,
            reload, usr1, pid
  go_file   wait for this file to exist before daemonizing (a start barrier)
  dispositions  also map signals to SIG_IGN, None and SIG_DFL
  posix     {name: value} set on daemonkit._posix first: turns a capability
            flag off so that its fallback runs (support.POSIX_FALLBACKS)
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import daemonkit  # noqa: E402
from daemonkit import _posix  # noqa: E402

config = json.loads(sys.argv[1])
for name, value in config.get("posix", {}).items():
    assert hasattr(_posix, name), name
    setattr(_posix, name, value)
options = config.get("options", {})
marker = config.get("marker")


def mark(name: str, text: str = "") -> None:
    """Leave a file in the marker directory, all at once (tests poll for it)."""
    if marker:
        path = os.path.join(marker, name)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)


if marker:
    options["on_reload"] = lambda: (print("reloaded", flush=True), mark("reload", "x"))
    options["signal_map"] = {signal.SIGUSR1: lambda s, f: mark("usr1", "x")}
    if config.get("dispositions"):  # the signal module's enum members, as users write them, and None
        options["signal_map"].update(
            {signal.SIGUSR2: signal.SIG_IGN, signal.SIGWINCH: None, signal.SIGURG: signal.SIG_DFL}
        )
if config.get("preserve_log"):
    import logging

    logging.basicConfig(filename=config["preserve_log"], level=logging.INFO)
for name in ("stdin", "stdout", "stderr"):
    if isinstance(options.get(name), dict):  # {"fd_of": path}: an open file object
        options[name] = open(options[name]["fd_of"], "a")  # noqa: SIM115 (the daemon keeps it)
if config.get("preserve_file"):
    kept = open(config["preserve_file"], "a")  # noqa: SIM115 (the daemon keeps it)
    options["files_preserve"] = [kept]
if config.get("threads"):
    import threading

    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
if config.get("go_file"):
    while not os.path.exists(config["go_file"]):
        time.sleep(0.002)
if "before" in config:
    print(config["before"], end="")


def body() -> int | None:
    action = config.get("body", "sleep")
    if config.get("preserve_log"):
        import logging

        logging.info("logged from the daemon")
    atexit.register(mark, "atexit", "x")
    mark("pid", str(os.getpid()))  # the last file the body opens before it idles
    if action == "raise":
        raise RuntimeError("boom")
    if action == "exit":
        sys.exit(config.get("status", 3))
    if action == "env":
        mark("environ", json.dumps(dict(os.environ)))
    if action == "open_tty":
        # A session leader would acquire this terminal as its controlling tty.
        primary, secondary = os.openpty()
        tty = os.open(os.ttyname(secondary), os.O_RDWR)  # no O_NOCTTY, on purpose
        mark("tty", os.ttyname(tty))
    if action == "print":
        print("printed by the daemon", flush=True)
    if action == "ready_then_sleep":
        daemonkit.ready()
        daemonkit.ready()
    if action == "return":
        return int(config.get("status", 0))
    try:
        while True:
            time.sleep(1)
    finally:
        mark("finally", "x")


if "decorator" in config:

    @daemonkit.daemon(**options)
    def main() -> int | None:
        return body()

    main()
else:
    try:
        with daemonkit.daemonize(**options):
            body()
    except daemonkit.AlreadyRunning as exc:
        if not config.get("catch"):
            sys.exit(f"app.py: {exc}")  # as a script would say it: one line
        print(f"caught {exc.pid}")
        sys.exit(0)
    except daemonkit.DaemonError as exc:  # raised before the fork, in the launcher
        sys.exit(f"app.py: {exc}")
