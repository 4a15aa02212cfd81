"""The load balancer's cost: wrk at 64 connections through a service's HAProxy, configured and
driven exactly as ``styx serve`` does it, and straight to the one replica behind it, in the
same run. Also, for the choice of HAProxy: the same load through the leanest proxy Python's
asyncio can be (it pipes bytes per connection and parses no HTTP at all, so any real Python
HTTP load balancer is slower still).

The replica is a small asyncio HTTP/1.1 server with keep-alive (fast, so that the proxy, not
the replica, is what is measured). Everything runs on loopback.

    python bench/bench_serve.py [--seconds 10] [--rounds 3] [--connections 64]

Prints the median p50 latency and requests per second of each path, the p50 added by the
load balancer, and its throughput as a share of direct. The issue's targets: at most 1 ms
added at p50, at least 80 % of direct throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _util import REPO

sys.path.insert(0, str(REPO / "src"))

from styx.serve import haproxy

BODY = b"hello from the replica\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)

REPLICA = f"""
import asyncio, sys
RESPONSE = {RESPONSE!r}
WORK_S = float(sys.argv[2])
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\\r\\n\\r\\n")
            if WORK_S:
                await asyncio.sleep(WORK_S)
            writer.write(RESPONSE)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=1024)
    await server.serve_forever()
asyncio.run(main())
"""

PIPE_PROXY = """
import asyncio, sys
UP = int(sys.argv[2])
async def pipe(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except ConnectionError:
        pass
    w.close()
async def handle(reader, writer):
    up_r, up_w = await asyncio.open_connection("127.0.0.1", UP)
    await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=1024)
    await server.serve_forever()
asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def wrk(port: int, seconds: int, connections: int, threads: int = 2) -> tuple[float, float]:
    """(p50 ms, requests per second) of one wrk run."""
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: .*", out)
    if p50 is None or rps is None:
        raise SystemExit(f"cannot read wrk's output:\n{out}")
    if errors:
        print(f"  (wrk on {port}: {errors.group(0)})", file=sys.stderr)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)]
    return float(p50.group(1)) * scale, float(rps.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk's threads")
    parser.add_argument(
        "--work-ms", type=float, default=0.0,
        help="time the replica spends on each request, off the CPU (a model on a GPU)",
    )  # fmt: skip
    args = parser.parse_args()
    for tool in ("wrk", "haproxy"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install {tool})")
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="styx-bench-serve-") as tmp:
        replica_port, pipe_port = free_port(), free_port()
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", REPLICA, str(replica_port), str(args.work_ms / 1000)]
            )
        )
        procs.append(
            subprocess.Popen([sys.executable, "-c", PIPE_PROXY, str(pipe_port), str(replica_port)])
        )
        lb = haproxy.LbSettings(Path(tmp) / "lb", "127.0.0.1", free_port())
        haproxy.check_config(lb)
        haproxy.start(lb)
        try:
            asyncio.run(haproxy.point(lb, "r1", "127.0.0.1", replica_port))
            for port in (replica_port, pipe_port, lb.port):
                wait_port(port)
            wrk(lb.port, 2, args.connections)  # warm up
            paths = {
                "direct": replica_port,
                "haproxy (styx serve)": lb.port,
                "python asyncio pipe": pipe_port,
            }
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
            for _ in range(args.rounds):  # interleaved, so drift hits every path alike
                for name, port in paths.items():
                    results[name].append(wrk(port, args.seconds, args.connections, args.threads))
        finally:
            haproxy.stop(lb)
            for proc in procs:
                proc.kill()
                proc.wait()
    med = {
        name: (statistics.median(p for p, _ in r), statistics.median(q for _, q in r))
        for name, r in results.items()
    }
    direct_p50, direct_rps = med["direct"]
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.seconds}s, median of {args.rounds} "
        f"rounds; the replica spends {args.work_ms:g} ms per request off the CPU"
    )
    print(f"{'path':<24} {'p50 ms':>8} {'req/s':>10} {'added p50 ms':>13} {'of direct':>10}")
    for name, (p50, rps) in med.items():
        print(
            f"{name:<24} {p50:>8.3f} {rps:>10.0f} {p50 - direct_p50:>13.3f} {rps / direct_rps:>9.0%}"
        )
    lb_p50, lb_rps = med["haproxy (styx serve)"]
    ok = lb_p50 - direct_p50 <= 1.0 and lb_rps / direct_rps >= 0.8
    print(f"targets (<= 1 ms added at p50, >= 80 % of direct): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
