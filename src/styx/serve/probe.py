"""A replica's readiness probe: one HTTP request to its endpoint, with a deadline."""

from __future__ import annotations

import asyncio
import contextlib

from styx.spec.service import ReadinessProbe


async def probe(host: str, port: int, spec: ReadinessProbe) -> str | None:
    """None when the replica answers ``spec.path`` with a 2xx status within the probe's
    timeout; else why not, in a few words."""
    method = "POST" if spec.post_data is not None else "GET"
    body = (spec.post_data or "").encode()
    headers = {
        "Host": f"{host}:{port}",
        "User-Agent": "styx-readiness-probe",
        "Connection": "close",
    }
    if spec.post_data is not None:
        headers["Content-Type"] = "application/json"
        headers["Content-Length"] = str(len(body))
    headers.update(dict(spec.headers))
    head = f"{method} {spec.path} HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    writer = None
    try:
        async with asyncio.timeout(spec.timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(head.encode() + b"\r\n" + body)
            await writer.drain()
            status_line = await reader.readline()
    except TimeoutError:
        return f"no answer from {host}:{port}{spec.path} within {spec.timeout_s:g} s"
    except OSError as e:
        return f"{host}:{port}{spec.path}: {e.strerror or e}"
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
    parts = status_line.decode("latin-1").split()
    if len(parts) < 2 or not parts[1].isdigit():
        return f"{host}:{port}{spec.path} did not answer HTTP"
    status = int(parts[1])
    if 200 <= status < 300:
        return None
    return f"{spec.path} answered HTTP {status}"
