"""The load balancer: an HAProxy process per service, configured once and driven at run time.

Why HAProxy: it streams responses as they come (LLM tokens), retries a request that found a
dead replica on another one, measures request rates, and adds well under a millisecond at
high concurrency (BENCHMARKS.md, "Serving"). It runs apart from the controller, so serving goes
on while the controller restarts.

The configuration never changes while the service lives: the backend has ``SLOTS`` server
slots, all in maintenance at start, and the controller points a slot at a READY replica
(``set server ... addr``, ``state ready``) or takes it away (``state drain``, then ``maint``)
through the runtime API on a unix socket. A ``backup`` server, used only while no replica is
up, is the controller's cold-start holder (:mod:`styx.serve.holder`): a request that arrives
while the service has scaled to zero waits there for a replica instead of failing.

Requests are retried on another replica (``retry-on``, ``option redispatch``) only for
idempotent methods: a POST to an LLM endpoint is never sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
from pathlib import Path

from styx.errors import NotSupportedError, RemoteError

#: Server slots in the backend: replicas of every version at once (a rolling update surges).
SLOTS = 128
BACKEND = "replicas"
_IDEMPOTENT = "METH_GET || METH_HEAD || METH_OPTIONS || { method PUT DELETE TRACE }"


@dataclasses.dataclass(frozen=True, slots=True)
class LbSettings:
    """What a service's load balancer is configured with."""

    folder: Path
    host: str
    port: int
    policy: str = "round_robin"
    stream_timeout_s: float = 600.0
    tls_pem: Path | None = None

    @property
    def sockets(self) -> Path:
        """A short private folder for the unix sockets: a socket's path may not pass 107
        bytes, and a service's folder under a deep STYX_HOME can."""
        import hashlib

        from styx.agent.bootstrap import tmp_tag

        digest = hashlib.sha1(str(self.folder.resolve()).encode()).hexdigest()[:10]
        return Path(f"/tmp/styx-lb-{tmp_tag()}{digest}")

    @property
    def socket(self) -> Path:
        return self.sockets / "haproxy.sock"

    @property
    def holder(self) -> Path:
        return self.sockets / "hold.sock"

    @property
    def config(self) -> Path:
        return self.folder / "haproxy.cfg"

    @property
    def pidfile(self) -> Path:
        return self.folder / "haproxy.pid"

    @property
    def log(self) -> Path:
        return self.folder / "load-balancer.log"


def binary() -> str:
    """The haproxy executable; NotSupportedError ``load-balancer-missing`` when absent."""
    found = shutil.which(os.environ.get("STYX_HAPROXY") or "haproxy")
    if not found:
        raise NotSupportedError(
            "HAProxy, which Styx uses as the services' load balancer, is not installed here.",
            "Install it (Debian/Ubuntu: apt-get install haproxy; macOS: brew install haproxy), "
            "then run the command again.",
            code="load-balancer-missing",
        )
    return found


def render(lb: LbSettings) -> str:
    """The HAProxy configuration of a service's load balancer."""
    balance = (
        "leastconn" if lb.policy in ("least_load", "instance_aware_least_load") else "roundrobin"
    )
    bind = f"{lb.host}:{lb.port}"
    if lb.tls_pem is not None:
        bind += f" ssl crt {lb.tls_pem}"
    stream = max(1, int(lb.stream_timeout_s))
    # Half the cores: the rest stay with the replicas, the controller and the clients on this
    # machine (on 2 cores, 1 thread gave 56 % of direct throughput against 44 % for 2).
    threads = max(1, (os.cpu_count() or 2) // 2)
    return f"""# Written by Styx for one service; driven at run time through {lb.socket.name}.
global
    stats socket {lb.socket} mode 600 level admin
    stats timeout 10s
    log stdout format raw daemon
    hard-stop-after 30s
    nbthread {threads}

defaults
    mode http
    log global
    option httplog
    option dontlog-normal
    timeout connect 2s
    timeout client {stream}s
    timeout server {stream}s
    timeout http-request 30s
    timeout http-keep-alive 60s
    timeout queue 30s
    retries 2
    option redispatch 1
    retry-on conn-failure empty-response response-timeout

frontend service
    bind {bind}
    http-request disable-l7-retry unless {_IDEMPOTENT}
    default_backend {BACKEND}

backend {BACKEND}
    balance {balance}
    server-template r 1-{SLOTS} 127.0.0.1:9 disabled check inter 1s fall 2 rise 1 observe layer4 error-limit 1 on-error mark-down
    server hold unix@{lb.holder} backup
"""


def write_tls(folder: Path, keyfile: str, certfile: str) -> Path:
    """Join the certificate and key into the one PEM file HAProxy reads (0600)."""
    pem = folder / "tls.pem"
    try:
        text = (
            Path(certfile).expanduser().read_text() + "\n" + Path(keyfile).expanduser().read_text()
        )
    except OSError as e:
        raise NotSupportedError(
            f"The service's TLS files cannot be read: {e}.",
            "Point 'service.tls.keyfile' and 'certfile' at readable PEM files.",
            code="tls-file-unreadable",
        ) from e
    fd = os.open(pem, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return pem


def private_dir(path: Path) -> None:
    """Make ``path`` a folder only this user may enter, or refuse one someone else made."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.lstat()
    if path.is_symlink() or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise NotSupportedError(
            f"{path} is not a private folder of this user, so the load balancer cannot use it.",
            f"Remove {path} (someone else made it), then run the command again.",
            code="load-balancer-config",
        )


def check_config(lb: LbSettings) -> None:
    """Write the configuration and have HAProxy check it (a bad TLS file fails here)."""
    lb.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    private_dir(lb.sockets)
    lb.config.write_text(render(lb))
    try:
        done = subprocess.run(
            [binary(), "-c", "-q", "-f", str(lb.config)], capture_output=True, text=True, timeout=30
        )
    finally:
        with contextlib.suppress(OSError):
            lb.sockets.rmdir()  # made again by start(); none is left by a refused config
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise NotSupportedError(
            f"The load balancer's configuration was refused: {detail[-1] if detail else 'no output'}.",
            "Check the service's tls files and port, then run the command again.",
            code="load-balancer-config",
        )


def running_pid(lb: LbSettings) -> int | None:
    """The pid of this service's HAProxy when it runs (checked against its command line)."""
    try:
        pid = int(lb.pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if str(lb.config).encode() in cmdline else None


def start(lb: LbSettings) -> int:
    """Start the service's HAProxy unless it runs; returns its pid. It runs in its own session,
    so it outlives the controller that started it."""
    pid = running_pid(lb)
    if pid is not None:
        return pid
    lb.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    private_dir(lb.sockets)
    lb.config.write_text(render(lb))
    lb.socket.unlink(missing_ok=True)
    with lb.log.open("ab") as log:
        proc = subprocess.Popen(
            [binary(), "-db", "-f", str(lb.config)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
    lb.pidfile.write_text(str(proc.pid))
    import time

    deadline = time.monotonic() + 10
    while not lb.socket.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            with contextlib.suppress(OSError):
                proc.kill()
            lines = lb.log.read_text(errors="replace").strip().splitlines()
            why = next((x for x in reversed(lines) if "ALERT" in x), lines[-1] if lines else "")
            raise NotSupportedError(
                f"The load balancer did not start: {why.split(' : ', 1)[-1] or 'no output'}.",
                "Its full log is `styx serve logs NAME --load-balancer`.",
                code="load-balancer-failed",
            )
        time.sleep(0.02)
    return proc.pid


def stop(lb: LbSettings, timeout: float = 10.0) -> None:
    """Stop the service's HAProxy (if it runs) and wait for it to exit."""
    import time

    pid = running_pid(lb)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while not _ended(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(0.05)
    lb.pidfile.unlink(missing_ok=True)
    lb.socket.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        lb.sockets.rmdir()  # empty once the holder's socket is gone too


def _ended(pid: int) -> bool:
    """Whether ``pid`` has exited (reaped here when this process started it)."""
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return True
    return not Path(f"/proc/{pid}").exists() or _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


# -- the runtime API -----------------------------------------------------------------------------


async def command(lb: LbSettings, line: str, timeout: float = 5.0) -> str:
    """Send one runtime-API command and return HAProxy's answer; RemoteError when it cannot
    be reached in ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_unix_connection(str(lb.socket))
            try:
                writer.write(line.encode() + b"\n")
                await writer.drain()
                answer = await reader.read()
            finally:
                writer.close()
    except (OSError, TimeoutError) as e:
        raise RemoteError(
            f"The load balancer did not answer {line.split()[0]!r}: {e or 'timed out'}.",
            "Its log is `styx serve logs NAME --load-balancer`.",
            code="load-balancer-unreachable",
        ) from e
    return answer.decode(errors="replace")


@dataclasses.dataclass(frozen=True, slots=True)
class SlotStats:
    """One backend server's numbers from ``show stat``."""

    name: str
    status: str  # UP, DOWN, MAINT, DRAIN, no check, ...
    current: int  # sessions now (in-flight requests)
    total: int  # sessions so far


@dataclasses.dataclass(frozen=True, slots=True)
class Stats:
    """The frontend's request count so far, and the backend's servers."""

    requests: int
    slots: dict[str, SlotStats]


def parse_stats(csv_text: str) -> Stats:
    """Read ``show stat``'s CSV (its header line starts with ``# ``)."""
    lines = [line for line in csv_text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("# "):
        raise ValueError("not a 'show stat' answer")
    fields = lines[0][2:].split(",")

    def number(row: dict[str, str], name: str) -> int:
        text = row.get(name, "")
        return int(text) if text.isdigit() else 0

    requests, slots = 0, {}
    for line in lines[1:]:
        row = dict(zip(fields, line.split(","), strict=False))
        proxy, server = row.get("pxname"), row.get("svname", "")
        if proxy == "service" and server == "FRONTEND":
            requests = number(row, "req_tot")
        elif proxy == BACKEND and server not in ("BACKEND", "hold"):
            slots[server] = SlotStats(
                server, row.get("status", ""), number(row, "scur"), number(row, "stot")
            )
    return Stats(requests, slots)


async def stats(lb: LbSettings) -> Stats:
    """The load balancer's numbers now."""
    return parse_stats(await command(lb, "show stat"))


async def point(lb: LbSettings, slot: str, host: str, port: int) -> None:
    """Send new requests to ``host:port`` through ``slot`` (taken out of maintenance)."""
    await _expect(lb, f"set server {BACKEND}/{slot} addr {host} port {port}")
    await _expect(lb, f"set server {BACKEND}/{slot} state ready")
    await _expect(lb, f"set server {BACKEND}/{slot} health up")


async def drain(lb: LbSettings, slot: str) -> None:
    """No new requests through ``slot``; in-flight ones finish."""
    await _expect(lb, f"set server {BACKEND}/{slot} state drain")


async def retire(lb: LbSettings, slot: str) -> None:
    """Put ``slot`` back in maintenance: nothing reaches it."""
    await _expect(lb, f"set server {BACKEND}/{slot} state maint")


async def _expect(lb: LbSettings, line: str) -> None:
    answer = (await command(lb, line)).strip()
    # Successful "set server" commands answer nothing, or a line saying what changed.
    if answer and ("No such" in answer or "Require" in answer or "invalid" in answer.lower()):
        raise RemoteError(
            f"The load balancer refused {line!r}: {answer}.",
            "This is a bug in Styx; please report it with the load balancer's log.",
            code="load-balancer-refused",
        )
