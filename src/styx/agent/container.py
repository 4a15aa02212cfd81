"""The node side of a cluster whose task runs in a container image (``image_id: docker:...``).

Styx's runtime (Ray, the agent) stays on the node itself, so an image needs no Python, apt or
sudo. One long-lived container per node (host networking, ``sleep`` as its process) holds the
image; every job part runs in it through ``<runtime> exec``, its environment in a file of the
cluster's private folder that the part reads and removes first (so no value, secrets included,
is on a command line or in the runtime's own records). The container's processes are the node's processes too (a child
PID namespace), so the job's marker finds them for ``cancel`` and ``kill`` as on a bare node.

``ROOT/container.json`` (written by the client once the container runs) says which runtime
and container a node's job parts use; :func:`remove` takes the container away with the
cluster's other processes on ``stop`` and ``down``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import subprocess
from pathlib import Path

#: The file under the agent root that marks a node whose jobs run in a container.
STATE_FILE = "container.json"
#: The folder (under the agent root, mounted at the same path) where job scripts are written.
SCRIPTS = "container-scripts"
#: Environment names a job part gets besides its own envs: who and where it is.
_PASSED = ("HOME", "USER", "LOGNAME", "PYTHONUNBUFFERED", "CUDA_VISIBLE_DEVICES")
#: Sources the part's environment file and removes it at once, then runs the job script with
#: bash when the image has it (SkyPilot's scripts are bash), else sh.
_SHELL = (
    '. "$1" && rm -f "$1" || exit 126; '
    'if command -v bash >/dev/null 2>&1; then exec bash "$0"; else exec sh "$0"; fi'
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclasses.dataclass(frozen=True, slots=True)
class ContainerState:
    """Which container a node's jobs run in: its runtime (``docker`` or ``podman``), name,
    image, and the pid of its process when it was last seen running."""

    runtime: str
    name: str
    image: str
    pid: int = 0

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ContainerState:
        data = json.loads(text)
        return cls(str(data["runtime"]), str(data["name"]), str(data["image"]), int(data["pid"]))


def load(root: str | Path) -> ContainerState | None:
    """The node's container, or None when its jobs run on the node itself."""
    try:
        return ContainerState.from_json((Path(root) / STATE_FILE).read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None


def scripts_dir(root: str | Path) -> Path:
    return Path(root) / SCRIPTS


def _alive(pid: int) -> bool:
    return pid > 0 and os.path.exists(f"/proc/{pid}")


def ensure_running(root: str | Path, state: ContainerState) -> ContainerState:
    """The container running (started again when it died: a killed container leaves the
    cluster usable), with its current pid recorded."""
    if _alive(state.pid):
        return state
    rt = state.runtime
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run([rt, "start", state.name], capture_output=True, timeout=60, check=False)
    try:
        out = subprocess.run(
            [rt, "inspect", "-f", "{{.State.Pid}}", state.name],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout.strip()
        pid = int(out or 0)
    except (OSError, ValueError, subprocess.SubprocessError):
        pid = 0
    fresh = dataclasses.replace(state, pid=pid)
    with contextlib.suppress(OSError):
        (Path(root) / STATE_FILE).write_text(fresh.to_json())
    return fresh


def env_file_text(env: dict[str, str], names: set[str] | list[str]) -> str:
    """``export`` lines for the job's environment (its own names and :data:`_PASSED`).

    Values never go on the runtime's command line (``-e NAME=value``) or through its exec
    options (``-e NAME``): podman keeps an exec session's environment in its state database
    on disk, secrets included. A file in the cluster's private folder, read and removed by
    the part's first command, is all that holds them."""
    wanted = set(names) | {n for n in _PASSED if n in env}
    lines = []
    for name in sorted(wanted):
        if name in env and _NAME.fullmatch(name):
            value = env[name].replace("'", "'\\''")
            lines.append(f"export {name}='{value}'\n")
    return "".join(lines)


def exec_argv(state: ContainerState, script: str, workdir: str, env_file: str) -> list[str]:
    """The argv that runs ``script`` in ``workdir`` with the environment in ``env_file`` (both
    paths visible inside the container)."""
    return [state.runtime, "exec", "-w", workdir, state.name, "sh", "-c", _SHELL, script, env_file]


def remove(root: str | Path) -> None:
    """Remove the node's container (``stop``, ``down``); nothing when there is none."""
    state = load(root)
    if state is None:
        return
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            [state.runtime, "rm", "-f", state.name], capture_output=True, timeout=120, check=False
        )
    with contextlib.suppress(OSError):
        (Path(root) / STATE_FILE).unlink()
