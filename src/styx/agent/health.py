"""Is the cluster's Ray still there? A probe of its GCS port, with a deadline."""

from __future__ import annotations

import asyncio
import contextlib


async def gcs_answers(address: str, timeout: float = 2.0) -> bool:
    """Whether something accepts a TCP connection at ``address`` (``ip:port``) within
    ``timeout`` seconds: a GCS killed, or a head gone, refuses or stays silent."""
    host, _, port = address.rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)
    except (OSError, TimeoutError, ValueError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
