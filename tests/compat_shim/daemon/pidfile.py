from daemonkit.compat.pidfile import *  # noqa: F403
