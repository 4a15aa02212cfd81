"""What runs inside a Ray worker on each node of a job: one bash script, its output streamed back.

:func:`run_part` is a generator (a Ray streaming-generator task): it yields ``("pid", pid)`` once
the script has started, then ``("out", bytes)`` chunks as the script prints them, and finally
``("exit", code)``. The driver (the agent) turns the chunks into log lines. Streaming through the
task's return channel keeps the first output of a job a few milliseconds from its start and works
the same for the head and for remote nodes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from styx.agent.proctree import MARKER_ENV, kill_marked

# Set by Ray in its worker processes; meaningless (or harmful) to a user's program.
_WORKER_ONLY_ENV = (
    "RAY_RAYLET_PID",
    "RAY_JOB_ID",
    "RAY_CLIENT_MODE",
    "RAY_LD_PRELOAD_ON_WORKERS",
    "PYTHONBREAKPOINT",
    "OMP_NUM_THREADS",
    "PYTHONDONTWRITEBYTECODE",
    "VIRTUAL_ENV",
    "VIRTUAL_ENV_PROMPT",
    "CUDA_VISIBLE_DEVICES",
)

Event = tuple[str, object]


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _WORKER_ONLY_ENV}
    # Keep the agent's runtime venv off the user's PATH: `python` must be the user's python.
    if sys.prefix != sys.base_prefix:
        runtime_bin = str(Path(sys.prefix) / "bin")
        env["PATH"] = os.pathsep.join(
            p for p in env.get("PATH", "").split(os.pathsep) if p and p != runtime_bin
        )
    return env


def gpu_ids() -> list[str]:
    """The GPU ids Ray assigned to the current task (empty outside a GPU task)."""
    import ray

    return [str(int(g)) if isinstance(g, float) else str(g) for g in ray.get_gpu_ids()]


def run_part(
    script: str, env: dict[str, str], cwd: str | None, marker: str, wants_gpus: bool
) -> Iterator[Event]:
    """Run ``script`` under bash in its own session and stream what it prints.

    ``env`` is laid over the worker's environment; ``CUDA_VISIBLE_DEVICES`` is set to the GPUs
    Ray gave this task when the job asked for GPUs. The exit code follows the shell's rule for
    signals (128 + signal number).
    """
    full = _base_env()
    full.update(env)
    full[MARKER_ENV] = marker
    full.setdefault("PYTHONUNBUFFERED", "1")
    if wants_gpus:
        full["CUDA_VISIBLE_DEVICES"] = ",".join(gpu_ids())
    workdir = os.path.expanduser(cwd) if cwd else os.path.expanduser("~")
    if not os.path.isdir(workdir):
        yield ("out", f"styx: working directory {workdir} does not exist\n".encode())
        yield ("exit", 1)
        return
    proc = subprocess.Popen(
        ["bash", "-c", script],
        cwd=workdir,
        env=full,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        bufsize=0,
    )
    try:
        yield ("pid", proc.pid)
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        while True:
            data = os.read(fd, 1 << 16)
            if not data:
                break
            yield ("out", data)
        code = proc.wait()
        yield ("exit", 128 - code if code < 0 else code)
    finally:
        if proc.poll() is None:  # the task itself is being torn down: take the job with it
            kill_marked(marker, grace_s=0.5, extra_pids=[proc.pid])
        if proc.stdout is not None:
            proc.stdout.close()


def kill_part(marker: str, grace_s: float) -> int:
    """Kill the job's processes on this node (a Ray task pinned to the node)."""
    return kill_marked(marker, grace_s=grace_s)


def node_ip() -> str:
    """This node's IP as Ray sees it (a probe task)."""
    import ray

    return str(ray.util.get_node_ip_address())
