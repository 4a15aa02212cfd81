"""The typed client of a cluster's agent, over its unix socket (local or forwarded by SSH).

Errors come back as :class:`styx.errors.AgentError` (with the agent's ``code``, e.g.
``agent-protocol-mismatch``, ``job-infeasible``, ``agent-unreachable``) or
:class:`styx.errors.JobNotFound` for unknown job ids.
"""

from __future__ import annotations

import codecs
import dataclasses
import json
import os
import socket
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from styx.agent.protocol import (
    STREAM_IDLE_S,
    AutostopConfig,
    JobRecord,
    JobSpec,
    chunk_bytes,
    encode,
    is_chunk,
    is_heartbeat,
    request,
)
from styx.errors import AgentError, JobNotFound, StyxError

_ERRORS: dict[str, type[StyxError]] = {"job-not-found": JobNotFound}
_IDEMPOTENT = frozenset({"ping", "queue", "job", "status", "set_autostop"})


def error_from(reply: dict[str, Any]) -> StyxError:
    """The typed exception for an error reply."""
    err = reply.get("error") or {}
    code = str(err.get("code", "agent-error"))
    cls = _ERRORS.get(code)
    message = str(err.get("message", "The agent failed."))
    hint = err.get("hint")
    if cls is not None:
        return cls(message, hint)
    return AgentError(message, hint, code=code)


@dataclasses.dataclass(frozen=True, slots=True)
class PingInfo:
    """What ``ping`` says about the agent."""

    agent_version: str
    protocol_version: int
    pid: int
    cluster_name: str
    started_at: float
    ray_connected: bool
    ray_down: str | None = None  # why the cluster's Ray is gone, once the agent saw it go
    storage_error: str | None = None  # why the agent's last write failed (a full disk)


@dataclasses.dataclass(frozen=True, slots=True)
class AgentStatus:
    """The cluster's activity as the agent sees it (``idle_since`` is None while busy)."""

    pending: int
    setting_up: int
    running: int
    idle: bool
    idle_since: float | None
    autostop: AutostopConfig
    autostop_fired_at: float | None
    ray_connected: bool
    raw: dict[str, Any]


class _Conn:
    def __init__(self, path: Path, timeout: float | None) -> None:
        self.path, self.timeout = path, timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        target = str(path)
        dir_fd = None
        if len(target) > 100:  # sun_path is 108 bytes: reach long paths through /proc
            dir_fd = os.open(path.parent, os.O_PATH)
            target = f"/proc/self/fd/{dir_fd}/{path.name}"
        try:
            self.sock.connect(target)
        except OSError as e:
            self.sock.close()
            raise AgentError(
                f"Cannot reach the agent at {path}: {e.strerror or e}.", code="agent-unreachable"
            ) from e
        finally:
            if dir_fd is not None:
                os.close(dir_fd)
        self.file = self.sock.makefile("rb")

    def send(self, message: dict[str, Any]) -> None:
        self.sock.sendall(encode(message))

    def read(self) -> dict[str, Any]:
        """The next reply line, heartbeats skipped."""
        while True:
            try:
                line = self.file.readline()
            except TimeoutError as e:
                raise AgentError(
                    f"The agent at {self.path} sent nothing for {self.timeout:.0f} s.",
                    "Run `styx status -r` to see the cluster's state; `styx start` repairs "
                    "its runtime.",
                    code="agent-unreachable",
                ) from e
            if not line:
                raise AgentError("The agent closed the connection.", code="agent-unreachable")
            reply: dict[str, Any] = json.loads(line)
            if not is_heartbeat(reply):
                return reply

    def close(self) -> None:
        self.file.close()
        self.sock.close()


class AgentClient:
    """Typed calls to the agent listening on ``socket_path``. Thread-safe; one persistent
    connection for short calls, a fresh one for each streaming or blocking call."""

    def __init__(self, socket_path: str | os.PathLike[str], timeout: float | None = 30.0) -> None:
        self.socket_path = Path(socket_path)
        self.timeout = timeout
        self._conn: _Conn | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, op: str, args: dict[str, Any] | None = None) -> Any:
        """One request, one reply; returns ``result`` or raises the typed error."""
        msg = request(op, args)
        with self._lock:
            for attempt in (0, 1):
                fresh = self._conn is None
                if fresh:
                    self._conn = _Conn(self.socket_path, self.timeout)
                assert self._conn is not None
                sent = False
                try:
                    self._conn.send(msg)
                    sent = True
                    reply = self._conn.read()
                    break
                except (OSError, AgentError):
                    self._conn.close()
                    self._conn = None
                    # A kept connection may have gone stale (agent restarted): retry once, but
                    # never resend a request the agent may already have acted on.
                    if fresh or attempt or (sent and op not in _IDEMPOTENT):
                        raise
        return _result(reply)

    # --- typed operations -------------------------------------------------------------------

    def ping(self) -> PingInfo:
        r = self.call("ping")
        return PingInfo(**r)

    def submit(self, spec: JobSpec) -> int:
        return int(self.call("submit", {"spec": spec.to_dict()})["job_id"])

    def queue(
        self, all: bool = False, limit: int | None = None, skip_finished: bool = False
    ) -> list[JobRecord]:
        """Newest first: unfinished jobs plus recent ones; ``all`` for the whole history."""
        r = self.call("queue", {"all": all, "limit": limit, "skip_finished": skip_finished})
        return [JobRecord.from_dict(j) for j in r["jobs"]]

    def job(self, job_id: int) -> JobRecord:
        return JobRecord.from_dict(self.call("job", {"job_id": job_id})["job"])

    def cancel(self, job_ids: Sequence[int] | None = None, all: bool = False) -> list[int]:
        """Cancel jobs (their whole process trees on every node); returns the ids cancelled."""
        args: dict[str, Any] = {"all": True} if all else {"job_ids": list(job_ids or [])}
        return [int(i) for i in self._blocking("cancel", args)["cancelled"]]

    def wait(self, job_id: int, timeout: float | None = None) -> JobRecord:
        """Block until the job is terminal (or ``timeout`` seconds); returns its record."""
        r = self._blocking("wait", {"job_id": job_id, "timeout": timeout})
        return JobRecord.from_dict(r["job"])

    def tail_logs(
        self, job_id: int, follow: bool = True, lines: int | None = None
    ) -> Iterator[str]:
        """The job's combined log as text chunks (bytes that are not UTF-8 become U+FFFD):
        to the job's end (``follow``) or to the current end of the file. ``lines`` starts
        from the last N lines. :meth:`tail_log_bytes` gives the bytes as written."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        for data in self.tail_log_bytes(job_id, follow, lines):
            text = decoder.decode(data)
            if text:
                yield text
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail

    def tail_log_bytes(
        self, job_id: int, follow: bool = True, lines: int | None = None
    ) -> Iterator[bytes]:
        """The job's combined log as the bytes the job wrote, in chunks; as :meth:`tail_logs`."""
        # Followed, the agent sends a heartbeat at least every few seconds: silence is death.
        conn = _Conn(self.socket_path, STREAM_IDLE_S if follow else self.timeout)
        try:
            conn.send(request("tail_logs", {"job_id": job_id, "follow": follow, "lines": lines}))
            while True:
                reply = conn.read()
                if is_chunk(reply):
                    yield chunk_bytes(reply)
                    continue
                _result(reply)
                return
        finally:
            conn.close()

    def set_autostop(self, idle_minutes: int | None, down: bool = False) -> AutostopConfig:
        """Set autostop (None disables it); resets the idle timer."""
        r = self.call("set_autostop", {"idle_minutes": idle_minutes, "down": down})["autostop"]
        return AutostopConfig(r["idle_minutes"], bool(r["down"]))

    def status(self) -> AgentStatus:
        r = self.call("status")
        a = r["autostop"]
        return AgentStatus(
            pending=r["pending"],
            setting_up=r["setting_up"],
            running=r["running"],
            idle=r["idle"],
            idle_since=r["idle_since"],
            autostop=AutostopConfig(a["idle_minutes"], bool(a["down"])),
            autostop_fired_at=r["autostop_fired_at"],
            ray_connected=r["ray_connected"],
            raw=r,
        )

    def _blocking(self, op: str, args: dict[str, Any]) -> Any:
        conn = _Conn(self.socket_path, STREAM_IDLE_S)  # the agent sends heartbeats meanwhile
        try:
            conn.send(request(op, args))
            return _result(conn.read())
        finally:
            conn.close()


def _result(reply: dict[str, Any]) -> Any:
    if reply.get("ok"):
        return reply.get("result")
    raise error_from(reply)
