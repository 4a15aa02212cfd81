"""The replica app of the serving tests: a small threaded HTTP server (standard library).

- ``/health``: 200, or 503 while the file ``$SERVE_FAIL_FILE`` exists (or always, with
  ``SERVE_NEVER_READY=1``): the switch that makes a replica fail its probe;
- ``/`` and ``/whoami``: the replica's id (``STYX_SERVE_REPLICA_ID``) and version;
- ``/delay?ms=N``: answers after N ms;
- ``/stream?n=N&ms=M``: N chunks, M ms apart (chunked transfer), as an LLM streams tokens.
"""

from __future__ import annotations

import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

REPLICA = os.environ.get("STYX_SERVE_REPLICA_ID", "?")
VERSION = os.environ.get("SERVE_APP_VERSION", "1")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.do_GET()

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/health":
            fail = os.environ.get("SERVE_NEVER_READY") == "1" or os.path.exists(
                os.environ.get("SERVE_FAIL_FILE", "/nonexistent")
            )
            self._send(503 if fail else 200, b"unhealthy\n" if fail else b"ok\n")
        elif url.path == "/delay":
            time.sleep(int(query.get("ms", "0")) / 1000)
            self._send(200, f"replica {REPLICA} v{VERSION}\n".encode())
        elif url.path == "/stream":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(int(query.get("n", "5"))):
                chunk = f"token {i} from {REPLICA}\n".encode()
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
                time.sleep(int(query.get("ms", "100")) / 1000)
            self.wfile.write(b"0\r\n\r\n")
        else:
            self._send(200, f"replica {REPLICA} v{VERSION}\n".encode())


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    print(f"replica {REPLICA} v{VERSION} serving on port {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
