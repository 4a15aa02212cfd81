"""What runs inside a Ray worker on each node of a job: one bash script, its output streamed back.

:func:`run_part` is a generator (a Ray streaming-generator task): it yields ``("pid", pid)`` once
the script has started, then ``("out", bytes)`` chunks as the script prints them, and finally
``("exit", code)``. The driver (the agent) turns the chunks into log lines. Streaming through the
task's return channel keeps the first output of a job a few milliseconds from its start and works
the same for the head and for remote nodes.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from styx.agent import container
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
    # The bind shim keeps Ray's own servers on the node's address; a user's server must be
    # free to listen where it likes (0.0.0.0 for a service's port, for one).
    env.pop("STYX_BIND_ADDRESS", None)
    preload = [p for p in env.get("LD_PRELOAD", "").split(":") if p and "bindshim-" not in p]
    if preload:
        env["LD_PRELOAD"] = ":".join(preload)
    else:
        env.pop("LD_PRELOAD", None)
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
    script: str,
    env: dict[str, str],
    cwd: str | None,
    marker: str,
    wants_gpus: bool,
    agent_root: str | None = None,
) -> Iterator[Event]:
    """Run ``script`` under bash in its own session and stream what it prints.

    ``env`` is laid over the worker's environment; ``CUDA_VISIBLE_DEVICES`` is set to the GPUs
    Ray gave this task when the job asked for GPUs. The exit code follows the shell's rule for
    signals (128 + signal number). When the node's ``agent_root`` names a container
    (:mod:`styx.agent.container`), the script runs inside it with only the job's environment.
    """
    full = _base_env()
    full.update(env)
    full[MARKER_ENV] = marker
    full.setdefault("PYTHONUNBUFFERED", "1")
    if wants_gpus:
        full["CUDA_VISIBLE_DEVICES"] = ",".join(gpu_ids())
    home = full.get("HOME") or os.path.expanduser("~")  # a local cluster's node has its own
    workdir = home + cwd[1:] if cwd and (cwd == "~" or cwd.startswith("~/")) else cwd or home
    if not os.path.isdir(workdir):
        yield ("out", f"styx: working directory {workdir} does not exist\n".encode())
        yield ("exit", 1)
        return
    # The script goes to a file on the node, never into an argument list: any size works
    # (argv strings stop at 128 KiB), and what failed can be said plainly.
    # In the cluster's private Ray folder when there is one: it goes when Ray stops, so a
    # script whose worker was killed outright is not left behind.
    box = container.load(agent_root) if agent_root else None
    owner = os.environ.get("STYX_RAY_OWNER")
    folder = owner if owner and os.path.isdir(owner) else None
    if box is not None and agent_root:  # the script must be visible inside the container
        folder = str(container.scripts_dir(agent_root))
    fd, path = tempfile.mkstemp(prefix="styx-job-", suffix=".sh", dir=folder)
    env_path: str | None = None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(script)
        argv = ["bash", path]
        if box is not None and agent_root:
            box = container.ensure_running(agent_root, box)
            efd, env_path = tempfile.mkstemp(prefix="styx-env-", suffix=".sh", dir=folder)
            with os.fdopen(efd, "w", encoding="utf-8", errors="surrogateescape") as f:
                f.write(container.env_file_text(full, {*env, MARKER_ENV}))
            argv = container.exec_argv(box, path, workdir, env_path)
        yield from _run_script(argv, full, workdir, marker)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        if env_path is not None:  # normally gone already: the part's first command removes it
            with contextlib.suppress(OSError):
                os.unlink(env_path)


def _run_script(argv: list[str], env: dict[str, str], workdir: str, marker: str) -> Iterator[Event]:
    mask = os.umask(0o077)
    os.umask(mask)
    try:
        proc = subprocess.Popen(
            argv,
            cwd=workdir,
            umask=0o022 if mask == 0o077 else -1,  # Styx's own files are private; a job's not
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            bufsize=0,
        )
    except OSError as e:  # E2BIG: an environment over what the kernel passes
        yield ("out", f"styx: the job could not start: {e.strerror or e}\n".encode())
        yield ("exit", 126)
        return
    try:
        yield ("pid", proc.pid)
        assert proc.stdout is not None
        out = proc.stdout.fileno()
        while True:
            data = os.read(out, 1 << 16)
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
