# The one-line switch, as a package: scripts that `import daemon` get daemonkit.
from daemonkit.compat import *  # noqa: F403
from daemonkit.compat import DaemonContext, pidfile  # noqa: F401
