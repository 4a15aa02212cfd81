"""A local unix socket that reaches a unix socket inside a pod (the head pod's agent).

``python -m styx.providers.kubernetes.forward CONTEXT NAMESPACE POD PYTHON REMOTE LOCAL``
runs in the background, one per cluster, as SSH's ControlMaster does for SSH clusters. Each
connection to LOCAL is relayed over an exec stream on the pod that runs a tiny relay
(:data:`RELAY`, standard library only) between its stdin/stdout and REMOTE. The process imports
the Kubernetes client once, and keeps :data:`SPARES` streams open ahead of need (their relays
connect to REMOTE only when the first byte arrives), so a ``styx`` command pays a unix-socket
connect, not an exec's start-up (an API round trip and a Python start in the pod).

It exits when idle for ``--idle`` seconds (default 900), when LOCAL is removed, or on SIGTERM;
its pid is in ``LOCAL.pid``.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
import threading
import time

from styx.providers.kubernetes.podexec import read_pending

#: Exec streams kept open and idle, ready for the next connections.
SPARES = 3
#: How long a new connection may take to send its first bytes.
FIRST_BYTES_S = 60.0

#: The pod side: waits for the first bytes on stdin (a spare stream stays idle until used),
#: then stdin -> the unix socket, the socket -> stdout, until either end closes.
RELAY = (
    "import os,socket,sys,threading\n"
    "d=os.read(0,65536)\n"
    "if not d:sys.exit(0)\n"
    "s=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1])\n"
    "def up(d):\n"
    " while True:\n"
    "  if not d:\n"
    "   s.shutdown(socket.SHUT_WR);return\n"
    "  s.sendall(d)\n"
    "  d=os.read(0,65536)\n"
    "threading.Thread(target=up,args=(d,),daemon=True).start()\n"
    "while True:\n"
    " d=s.recv(65536)\n"
    " if not d:break\n"
    " os.write(1,d)\n"
)


def _pump(conn: socket.socket, ws: object) -> None:
    """Bytes both ways between a local connection and an exec stream, until one closes."""
    local_open = True
    try:
        while ws.is_open():  # type: ignore[attr-defined]
            ws.update(timeout=0.0)  # type: ignore[attr-defined]
            read_pending(ws)
            if ws.peek_stdout():  # type: ignore[attr-defined]
                conn.sendall(ws.read_stdout())  # type: ignore[attr-defined]
            raw: socket.socket = ws.sock.sock  # type: ignore[attr-defined]
            fds = [raw, conn] if local_open else [raw]
            ready, _, _ = select.select(fds, [], [], 1.0)
            if conn in ready:
                data = conn.recv(65536)
                if data:
                    ws.write_stdin(data)  # type: ignore[attr-defined]
                else:
                    local_open = False
                    ws.close_channel(0)  # type: ignore[attr-defined]
            if raw in ready:
                ws.update(timeout=0.05)  # type: ignore[attr-defined]
        if ws.peek_stdout():  # type: ignore[attr-defined]
            conn.sendall(ws.read_stdout())  # type: ignore[attr-defined]
    except OSError:
        pass
    finally:
        with contextlib.suppress(Exception):
            ws.close()  # type: ignore[attr-defined]
        with contextlib.suppress(OSError):
            conn.close()


def serve(
    context: str, namespace: str, pod: str, python: str, remote: str, local: str, idle: float
) -> int:
    from styx.providers.kubernetes.podexec import open_stream

    with contextlib.suppress(FileNotFoundError):
        os.unlink(local)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)
    try:
        server.bind(local)
    finally:
        os.umask(old)
    server.listen(64)
    with open(local + ".pid", "w") as f:
        f.write(f"{os.getpid()}\n")
    active = [0]
    last = [time.monotonic()]
    lock = threading.Lock()
    spares: list[object] = []
    filling = [0]

    def open_relay() -> object:
        argv = [python, "-I", "-S", "-c", RELAY, remote]
        return open_stream(context, namespace, pod, argv, stdin=True)

    def fill() -> None:
        try:
            ws = open_relay()
        except Exception:
            ws = None
        with lock:
            filling[0] -= 1
            if ws is not None:
                spares.append(ws)

    def refill() -> None:
        with lock:
            wanted = SPARES - len(spares) - filling[0]
            filling[0] += max(wanted, 0)
        for _ in range(wanted):
            threading.Thread(target=fill, daemon=True).start()

    def take() -> object:
        while True:
            with lock:
                ws = spares.pop(0) if spares else None
            if ws is None:
                return open_relay()
            with contextlib.suppress(Exception):
                ws.update(timeout=0.0)  # type: ignore[attr-defined]  # sees a close frame
            if ws.is_open():  # type: ignore[attr-defined]
                return ws
            with contextlib.suppress(Exception):
                ws.close()  # type: ignore[attr-defined]

    def handle(conn: socket.socket) -> None:
        # The agent's clients speak first: a connection that closes before its first bytes
        # (a liveness probe such as local_socket.accepts) uses no stream.
        try:
            conn.settimeout(FIRST_BYTES_S)
            first = conn.recv(65536)
            conn.settimeout(None)
        except OSError:
            first = b""
        if not first:
            conn.close()
            with lock:
                active[0] -= 1
                last[0] = time.monotonic()
            return
        try:
            ws = take()
            ws.write_stdin(first)  # type: ignore[attr-defined]
        except Exception:
            conn.close()
            with lock:
                active[0] -= 1
            return
        finally:
            refill()
        try:
            _pump(conn, ws)
        finally:
            with lock:
                active[0] -= 1
                last[0] = time.monotonic()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.settimeout(5.0)
    refill()
    try:
        while True:
            try:
                conn, _ = server.accept()
            except TimeoutError:
                with lock:
                    quiet = active[0] == 0 and time.monotonic() - last[0] > idle
                if quiet or not os.path.exists(local):
                    return 0
                continue
            with lock:
                active[0] += 1
            threading.Thread(target=handle, args=(conn,), daemon=True).start()
    finally:
        server.close()
        with lock:
            idle_streams, spares[:] = list(spares), []
        for ws in idle_streams:  # their relays see stdin close and exit
            with contextlib.suppress(Exception):
                ws.close()  # type: ignore[attr-defined]
        for path in (local, local + ".pid"):
            with contextlib.suppress(OSError):
                if path.endswith(".pid") or _ours(path):
                    os.unlink(path)


def _ours(path: str) -> bool:
    try:
        with open(path + ".pid") as f:
            return int(f.read().strip()) == os.getpid()
    except (OSError, ValueError):
        return True


def main(argv: list[str]) -> int:
    idle = 900.0
    if "--idle" in argv:
        i = argv.index("--idle")
        idle = float(argv[i + 1])
        argv = argv[:i] + argv[i + 2 :]
    if len(argv) != 6:
        sys.stderr.write("usage: forward CONTEXT NAMESPACE POD PYTHON REMOTE LOCAL [--idle S]\n")
        return 2
    context, namespace, pod, python, remote, local = argv
    return serve(context, namespace, pod, python, remote, local, idle)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
