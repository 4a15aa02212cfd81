"""Every call to the agent has a deadline: a silent agent (or a dead link) is given up on,
while a live one that only has nothing to say yet keeps the call open with heartbeats."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from styx.agent import client as client_mod
from styx.agent.client import AgentClient
from styx.agent.protocol import chunk_reply, encode, heartbeat_reply, ok_reply
from styx.errors import AgentError

Behaviour = Callable[[socket.socket], None]


@pytest.fixture
def fake_agent(tmp_path: Path) -> Iterator[Callable[[Behaviour], Path]]:
    """A unix socket that answers each connection with ``behaviour``."""
    servers: list[socket.socket] = []

    def start(behaviour: Behaviour) -> Path:
        path = tmp_path / f"agent{len(servers)}.sock"
        srv = socket.socket(socket.AF_UNIX)
        srv.bind(str(path))
        srv.listen()
        servers.append(srv)

        def serve() -> None:
            while True:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                conn.makefile("rb").readline()  # the request
                threading.Thread(target=behaviour, args=(conn,), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()
        return path

    yield start
    for srv in servers:
        srv.close()


def test_a_silent_agent_is_given_up_on(fake_agent, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_mod, "STREAM_IDLE_S", 0.5)
    path = fake_agent(lambda conn: time.sleep(30))  # accepts, then says nothing
    started = time.monotonic()
    with pytest.raises(AgentError) as info:
        list(AgentClient(path).tail_logs(1, follow=True))
    assert info.value.code == "agent-unreachable" and "sent nothing" in info.value.message
    assert time.monotonic() - started < 5
    with pytest.raises(AgentError) as info:
        AgentClient(path).wait(1)
    assert info.value.code == "agent-unreachable"
    with pytest.raises(AgentError) as info:
        AgentClient(path, timeout=0.5).ping()
    assert info.value.code == "agent-unreachable"


def test_heartbeats_keep_a_quiet_job_followed(fake_agent, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_mod, "STREAM_IDLE_S", 0.5)

    def quiet_then_done(conn: socket.socket) -> None:
        for _ in range(6):  # 1.2 s of silence from the job, more than the client's deadline
            conn.sendall(encode(heartbeat_reply()))
            time.sleep(0.2)
        conn.sendall(encode(chunk_reply(b"finally\n")))
        conn.sendall(encode(ok_reply({"status": "SUCCEEDED", "exit_code": 0})))
        conn.close()

    path = fake_agent(quiet_then_done)
    assert list(AgentClient(path).tail_logs(1, follow=True)) == ["finally\n"]


def test_the_agent_sends_heartbeats_while_a_log_is_quiet(agent) -> None:  # type: ignore[no-untyped-def]
    """The real agent: a job that prints nothing for longer than a heartbeat period."""
    from styx.agent.protocol import HEARTBEAT_S, JobSpec, chunk_bytes, is_chunk, request

    job = agent.client.submit(JobSpec(run=f"sleep {HEARTBEAT_S + 1.5}; echo late"))
    lines = []
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(60)
        s.connect(str(agent.socket))
        s.sendall(encode(request("tail_logs", {"job_id": job, "follow": True, "lines": None})))
        for line in s.makefile("rb"):  # the connection stays open: up to the final reply
            lines.append(json.loads(line))
            if "ok" in lines[-1]:
                break
    assert any(m.get("alive") for m in lines)
    assert b"late" in b"".join(chunk_bytes(m) for m in lines if is_chunk(m))
    assert lines[-1]["ok"] is True
