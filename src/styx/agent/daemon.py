"""The agent's processes: run, supervise, ensure, stop, stop-ray and the ``call`` bridge.

Single instances are guaranteed by ``flock``s (``agent.lock``, ``supervisor.lock``), which the
kernel releases when their holder dies, even by ``kill -9``; so "is it running?" never trusts a
stale pid file. The locks and the restart loop are :mod:`styx.supervisor`'s, shared with the
managed-jobs daemon.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from styx.agent.bootstrap import agent_run_argv, agent_supervise_argv
from styx.agent.paths import AgentPaths
from styx.errors import AgentError
from styx.supervisor import RestartPolicy, flock
from styx.supervisor import is_locked as _held

_LOG_ROTATE_BYTES = 20 * 1024 * 1024
#: The agent is restarted whenever it ends, quickly at first, then backing off to 5 s.
_AGENT_RESTARTS = RestartPolicy(min_delay_s=0.1, max_delay_s=5.0, healthy_after_s=30.0)


def _log_file(paths: AgentPaths) -> IO[bytes]:
    log = paths.agent_log
    with contextlib.suppress(OSError):
        if log.stat().st_size > _LOG_ROTATE_BYTES:
            log.replace(log.with_suffix(".log.1"))
    return open(log, "ab")


def is_supervised(root: Path) -> bool:
    """Whether a supervisor (and so, most likely, an agent) runs for the agent root ``root``."""
    return _held(root / "supervisor.lock")


# --- run ------------------------------------------------------------------------------------


def run(root: Path) -> int:
    """The agent in the foreground until SIGTERM/SIGINT."""
    import asyncio
    import logging

    from styx.agent.server import Server
    from styx.agent.service import Agent

    paths = AgentPaths(root)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    with flock(root / "agent.lock", blocking=False) as got:
        if got is None:
            print("styx agent: another agent already serves this root", file=sys.stderr)
            return 3
        paths.pid.write_text(str(os.getpid()))

        async def main() -> None:
            agent = Agent(root)
            agent.start()
            server = await Server(agent).serve(paths.socket)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
            server.close()
            await agent.shutdown()

        try:
            asyncio.run(main())
        finally:
            with contextlib.suppress(OSError):
                if paths.pid.read_text() == str(os.getpid()):
                    paths.pid.unlink()
    return 0


# --- supervise ------------------------------------------------------------------------------


def supervise(root: Path) -> int:
    """Run the agent and restart it whenever it dies, until SIGTERM/SIGINT or ``stop``."""
    from styx import supervisor

    paths = AgentPaths(root)

    def spawn() -> subprocess.Popen[bytes]:
        from styx.agent.raynode import load_env

        with _log_file(paths) as out:
            return subprocess.Popen(
                agent_run_argv(str(root), sys.executable),
                cwd=root,
                env={**os.environ, **load_env(root)},  # Ray's network settings
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )

    with flock(root / "supervisor.lock", blocking=False) as got:
        if got is None:
            return 0  # already supervised
        paths.supervisor_pid.write_text(str(os.getpid()))
        try:
            supervisor.supervise(spawn, _AGENT_RESTARTS, stop_requested=paths.stopping.exists)
        finally:
            with contextlib.suppress(OSError):
                paths.supervisor_pid.unlink()
    return 0


# --- ensure ---------------------------------------------------------------------------------


def _ping_version(paths: AgentPaths) -> str | None:
    from styx.agent.client import AgentClient

    if not paths.socket.exists():
        return None
    try:
        with AgentClient(paths.socket, timeout=5.0) as client:
            return client.ping().agent_version
    except (AgentError, OSError, ValueError):
        return None


def ensure(root: Path, timeout_s: float = 60.0) -> int:
    """Make sure a supervised agent of this version serves ``root``; 0 once it answers ping."""
    from styx.agent.version import agent_version

    paths = AgentPaths(root)
    mine = agent_version()
    supervised = _held(root / "supervisor.lock")
    if supervised and _ping_version(paths) == mine:
        return 0
    if not paths.config.exists():
        print(
            f"styx agent: {paths.config} is missing; the provisioner writes it first",
            file=sys.stderr,
        )
        return 2
    with flock(root / "ensure.lock", blocking=True):
        running = _ping_version(paths)
        supervised = _held(root / "supervisor.lock")
        if running == mine and supervised:
            return 0
        if running is not None and running != mine:  # another version: replace it
            stop(root)
            supervised = False
        with contextlib.suppress(OSError):
            paths.stopping.unlink()
        if not supervised:  # (a lone agent whose supervisor died is adopted when it exits)
            with _log_file(paths) as out:
                subprocess.Popen(
                    agent_supervise_argv(str(root), sys.executable),
                    cwd=root,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                    start_new_session=True,
                    close_fds=True,
                )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if _ping_version(paths) == mine:
                return 0
            time.sleep(0.05)
    print(
        f"styx agent: not answering at {paths.socket} after {timeout_s:g}s; see {paths.agent_log}",
        file=sys.stderr,
    )
    return 1


# --- stop -----------------------------------------------------------------------------------


def _signal_pidfile(pidfile: Path, lock: Path, grace_s: float) -> None:
    try:
        pid = int(pidfile.read_text())
    except (OSError, ValueError):
        return
    if not _held(lock):
        return  # the pid file is stale: do not signal an unrelated process
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and _held(lock):
        time.sleep(0.05)
    if _held(lock):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _held(lock):
            time.sleep(0.05)


def stop(root: Path, ray_temp_dir: str | None = None, ray_port: int | None = None) -> int:
    """Stop the supervisor, the agent and the jobs' processes on this node (and this cluster's
    Ray when its temp dir is given)."""
    from styx.agent.paths import agent_id
    from styx.agent.proctree import kill_marked
    from styx.agent.protocol import AgentConfig

    paths = AgentPaths(root)
    paths.stopping.touch()
    _signal_pidfile(paths.supervisor_pid, root / "supervisor.lock", grace_s=20)
    _signal_pidfile(paths.pid, root / "agent.lock", grace_s=20)
    with contextlib.suppress(OSError, AgentError):
        name = AgentConfig.load(root).cluster_name
        kill_marked(agent_id(root, name) + ":", grace_s=1.0, prefix=True)
    with contextlib.suppress(OSError):
        paths.socket.unlink()
    from styx.agent import container

    container.remove(root)  # a task's image container goes with the cluster's processes
    if ray_temp_dir:
        stop_ray(ray_temp_dir, ray_port)
    with contextlib.suppress(OSError):
        paths.stopping.unlink()
    return 0


def stop_ray(temp_dir: str, port: int | None = None) -> int:
    """Kill this cluster's Ray processes on this node (found by their owner marker, see
    :mod:`styx.agent.raynode`) and remove its private temp folder. ``port`` is accepted for
    older clients and not needed."""
    from styx.agent import raynode

    raynode.stop(temp_dir)
    return 0


# --- call -----------------------------------------------------------------------------------


def call(root: Path) -> int:
    """Bridge stdin/stdout to the agent's socket: each request line read from stdin is sent and
    its reply lines (chunks, then the final reply) are written to stdout."""
    from styx.agent.client import _Conn
    from styx.agent.protocol import encode, error_reply, is_chunk, is_heartbeat

    paths = AgentPaths(root)
    out = sys.stdout.buffer
    conn = None
    try:
        for line in sys.stdin.buffer:
            if not line.strip():
                continue
            if conn is None:
                try:
                    conn = _Conn(paths.socket, None)
                except AgentError as e:
                    out.write(encode(error_reply(e.code, e.message, e.hint)))
                    out.flush()
                    return 1
            conn.sock.sendall(line if line.endswith(b"\n") else line + b"\n")
            while True:
                reply = conn.file.readline()
                if not reply:
                    return 1
                out.write(reply)
                out.flush()
                msg = json.loads(reply)
                if not is_chunk(msg) and not is_heartbeat(msg):
                    break
    finally:
        if conn is not None:
            conn.close()
    return 0
