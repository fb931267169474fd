# The one-line switch, as a package: code that imports `daemon`,
# `daemon.daemon` or `daemon.pidfile` gets daemonkit.compat's modules
# themselves (not copies), so that patching `daemon.daemon.X` patches compat.
import sys

from daemonkit import compat
from daemonkit.compat import *  # noqa: F403
from daemonkit.compat import daemon, pidfile  # noqa: F401

sys.modules[__name__ + ".daemon"] = compat.daemon
sys.modules[__name__ + ".pidfile"] = compat.pidfile
