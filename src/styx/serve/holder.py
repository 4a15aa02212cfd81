"""The cold-start holder: where the load balancer sends requests while no replica is up.

HAProxy uses it as the backend's ``backup`` server (a unix socket), so it is reached only while
every replica slot is down: the service scaled to zero, or every replica was lost. A request
held here waits until a replica is READY, then is sent there with ``Connection: close`` and
its response streamed back; after ``timeout_s`` it gets a 503 saying no replica came up.
Performance does not matter here (a replica is launching); correctness does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)
_MAX_HEAD = 64 * 1024


class Holder:
    """Holds requests at a unix socket until ``endpoint()`` names a READY replica
    (``host:port``). ``waiting`` counts requests held now."""

    def __init__(self, path: Path, endpoint: Callable[[], str | None], timeout_s: float) -> None:
        self.path = path
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.waiting = 0
        self.ready = asyncio.Event()
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self.path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        self.path.chmod(0o600)

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)
        self.path.unlink(missing_ok=True)

    def poke(self) -> None:
        """Wake the held requests: a replica may be READY now."""
        self.ready.set()
        self.ready = asyncio.Event()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await _read_request(reader)
            if request is None:
                return
            self.waiting += 1
            try:
                target = await self._wait_for_replica()
            finally:
                self.waiting -= 1
            if target is None:
                writer.write(_reply(503, "No replica of the service became ready in time.\n"))
                await writer.drain()
                return
            await _forward(request, target, writer)
        except (OSError, asyncio.IncompleteReadError, ValueError) as e:
            log.info("held request ended early: %s", e)
        finally:
            writer.close()

    async def _wait_for_replica(self) -> str | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        while True:
            target = self.endpoint()
            if target is not None:
                return target
            left = deadline - loop.time()
            if left <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ready.wait(), min(left, 1.0))


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    """The whole request (head with ``Connection: close``, then its body), or None at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError as e:
        raise ValueError("request head too long") from e
    if len(head) > _MAX_HEAD:
        raise ValueError("request head too long")
    lines = head.decode("latin-1").split("\r\n")
    kept, length, chunked = [lines[0]], 0, False
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        key = name.strip().lower()
        if key == "content-length":
            length = int(value.strip())
        elif key == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
        if key in ("connection", "keep-alive"):
            continue
        kept.append(line)
    kept.append("Connection: close")
    body = b""
    if chunked:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            chunk = await reader.readexactly(size + 2)
            body += size_line + chunk
            if size == 0:
                break
    elif length:
        body = await reader.readexactly(length)
    return ("\r\n".join(kept) + "\r\n\r\n").encode("latin-1") + body


async def _forward(request: bytes, target: str, writer: asyncio.StreamWriter) -> None:
    host, _, port = target.rpartition(":")
    try:
        up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 10)
    except (OSError, TimeoutError):
        writer.write(_reply(502, "The replica the request waited for did not answer.\n"))
        await writer.drain()
        return
    try:
        up_writer.write(request)
        await up_writer.drain()
        while chunk := await up_reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    finally:
        up_writer.close()


def _reply(status: int, text: str) -> bytes:
    reason = {502: "Bad Gateway", 503: "Service Unavailable"}[status]
    body = text.encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
