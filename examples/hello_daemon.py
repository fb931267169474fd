"""A tiny HTTP daemon.

    python examples/hello_daemon.py     # returns once the server listens
    curl localhost:8765                 # it answers
    kill $(cat /tmp/hello-daemon.pid)   # it stops and removes its pidfile

Run it twice and the second launcher says "already running"; take the
port with something else first and the launcher prints the bind error.
"""

import http.server

from daemonkit import daemon, ready


@daemon(pidfile="/tmp/hello-daemon.pid", stderr="/tmp/hello-daemon.log", manual_ready=True)
def main() -> None:
    server = http.server.HTTPServer(("127.0.0.1", 8765), http.server.SimpleHTTPRequestHandler)
    ready()  # only now does the launcher exit 0
    server.serve_forever()


if __name__ == "__main__":
    main()
