"""The agent's socket server: JSON lines in, JSON lines out (see :mod:`styx.agent.protocol`).

A connection may carry any number of requests, one after another. Every failure becomes a typed
error reply; nothing a client sends can crash the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from styx.agent.protocol import (
    HEARTBEAT_S,
    PROTOCOL_VERSION,
    JobSpec,
    chunk_reply,
    encode,
    error_reply,
    fields,
    heartbeat_reply,
    invalid,
    ok_reply,
    parse_request,
)
from styx.agent.service import Agent
from styx.errors import AgentError, StyxError
from styx.spec.check import Value

log = logging.getLogger(__name__)

_LINE_LIMIT = 64 * 1024 * 1024  # a submit carries the job's scripts and envs


def _only(args: dict[str, Any], *names: str) -> Value:
    """The request's arguments, whose names must all be ``names``; read them with ``*_at``."""
    return fields(args, "args").obj(names)


def _job_ids(a: Value) -> list[int]:
    return [item.integer() for item in a.child("job_ids", a.raw.get("job_ids")).items()]


class Server:
    """Serves one :class:`Agent` on a unix socket."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._ops: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
            "ping": self._ping,
            "submit": self._submit,
            "queue": self._queue,
            "job": self._job,
            "cancel": self._cancel,
            "wait": self._wait,
            "set_autostop": self._set_autostop,
            "status": self._status,
        }
        #: Operations that may take long: heartbeats go out while they run.
        self._long = frozenset({"cancel", "wait"})

    async def serve(self, socket_path: Path) -> asyncio.Server:
        """Bind ``socket_path`` (relative to the cwd when the full path is too long)."""
        with_dir = socket_path
        if len(str(socket_path)) > 100:
            os.chdir(socket_path.parent)
            with_dir = Path(socket_path.name)
        if with_dir.exists() or with_dir.is_symlink():
            with_dir.unlink()
        server = await asyncio.start_unix_server(
            self._handle, path=str(with_dir), limit=_LINE_LIMIT
        )
        os.chmod(with_dir, 0o600)
        return server

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    writer.write(
                        encode(
                            error_reply(
                                "invalid-request", "Request too large.", "Send a smaller request."
                            )
                        )
                    )
                    break
                if not line:
                    break
                await self._one(line, writer)
        except (ConnectionError, BrokenPipeError):
            pass
        finally:
            writer.close()

    async def _one(self, line: bytes, writer: asyncio.StreamWriter) -> None:
        try:
            op, args = parse_request(line)
            if op == "tail_logs":
                await self._tail(args, writer)
                return
            if op in self._long:
                reply = ok_reply(await _with_heartbeats(self._ops[op](args), writer))
            else:
                reply = ok_reply(await self._ops[op](args))
        except StyxError as e:
            reply = error_reply(e.code, e.message, e.hint)
        except (ConnectionError, BrokenPipeError):
            raise
        except Exception as e:
            log.exception("request failed")
            reply = error_reply(
                "agent-internal",
                f"The agent failed: {e}",
                "This is a bug in the Styx agent; see agent.log on the head node.",
            )
        writer.write(encode(reply))
        await writer.drain()

    # --- operations -------------------------------------------------------------------------

    async def _ping(self, args: dict[str, Any]) -> dict[str, Any]:
        _only(args)
        a = self.agent
        return {
            "agent_version": a.version,
            "protocol_version": PROTOCOL_VERSION,
            "pid": os.getpid(),
            "cluster_name": a.config.cluster_name,
            "started_at": a.started_at,
            "ray_connected": a.executor.connected and a.ray_down is None,
            "ray_down": a.ray_down,
            "storage_error": a.storage_error,
        }

    async def _submit(self, args: dict[str, Any]) -> dict[str, Any]:
        a = _only(args, "spec")
        return {"job_id": self.agent.submit(JobSpec.from_dict(a.raw.get("spec")))}

    async def _queue(self, args: dict[str, Any]) -> dict[str, Any]:
        a = _only(args, "all", "limit", "skip_finished")
        jobs = self.agent.store.queue(
            all_jobs=a.boolean_at("all", False),
            limit=a.opt_integer_at("limit"),
            skip_finished=a.boolean_at("skip_finished", False),
        )
        return {"jobs": [j.to_dict() for j in jobs]}

    async def _job(self, args: dict[str, Any]) -> dict[str, Any]:
        a = _only(args, "job_id")
        return {"job": self.agent.store.get(a.integer_at("job_id")).to_dict()}

    async def _cancel(self, args: dict[str, Any]) -> dict[str, Any]:
        a = _only(args, "job_ids", "all")
        every = a.boolean_at("all", False)
        if not every and "job_ids" not in args:
            raise invalid("cancel needs job_ids or all=true.")
        ids = None if every else _job_ids(a)
        return {"cancelled": await self.agent.cancel(ids)}

    async def _wait(self, args: dict[str, Any]) -> dict[str, Any]:
        a = _only(args, "job_id", "timeout")
        rec = await self.agent.wait(a.integer_at("job_id"), a.opt_number_at("timeout"))
        return {"job": rec.to_dict()}

    async def _set_autostop(self, args: dict[str, Any]) -> dict[str, Any]:
        a = _only(args, "idle_minutes", "down")
        minutes = a.opt_integer_at("idle_minutes")
        if minutes is not None and minutes < 0:
            raise AgentError(
                "idle_minutes must be >= 0.",
                "Use null to disable autostop.",
                code="invalid-request",
            )
        setting = self.agent.autostop.set(minutes, a.boolean_at("down", False))
        return {"autostop": {"idle_minutes": setting.idle_minutes, "down": setting.down}}

    async def _status(self, args: dict[str, Any]) -> dict[str, Any]:
        _only(args)
        return self.agent.status()

    async def _tail(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        a = _only(args, "job_id", "follow", "lines")
        job_id = a.integer_at("job_id")
        follow = a.boolean_at("follow", False)
        # A follower keeps the cluster from being idle until it has read the job's end.
        with self.agent.following() if follow else contextlib.nullcontext():
            await self._stream(job_id, follow, a.opt_integer_at("lines"), writer)

    async def _stream(
        self, job_id: int, follow: bool, lines: int | None, writer: asyncio.StreamWriter
    ) -> None:
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=64)

        async def produce() -> None:
            try:
                async for data in self.agent.tail(job_id, follow, lines):
                    await chunks.put(data)
            finally:
                await chunks.put(None)

        producer = asyncio.ensure_future(produce())
        try:
            while True:
                try:
                    data = await asyncio.wait_for(chunks.get(), HEARTBEAT_S)
                except TimeoutError:
                    writer.write(encode(heartbeat_reply()))  # a quiet job, a live agent
                    await writer.drain()
                    continue
                if data is None:
                    break
                writer.write(encode(chunk_reply(data)))
                await writer.drain()
            await producer  # ended: raises the log's own error (an unknown job), if any
            rec = self.agent.store.get(job_id)
            writer.write(encode(ok_reply({"status": rec.status.value, "exit_code": rec.exit_code})))
            await writer.drain()
        finally:
            if not producer.done():
                producer.cancel()


async def _with_heartbeats(work: Awaitable[Any], writer: asyncio.StreamWriter) -> Any:
    """Await ``work``, telling the client every HEARTBEAT_S seconds that the agent is alive."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_S)
            if done:
                return task.result()
            writer.write(encode(heartbeat_reply()))
            await writer.drain()
    finally:
        if not task.done():
            task.cancel()
