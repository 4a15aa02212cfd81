"""The leak check run after every cluster test module: no process, no folder left behind.

A cluster's processes are found the way Styx itself finds them, by ownership, not by command
lines: Ray's processes carry ``STYX_RAY_OWNER`` (and run in a session recorded in their private
folder), job processes carry ``STYX_JOB_MARKER``, agents and supervisors name their root on
their command line, as do the serve daemon and each service's HAProxy. Folders: each
cluster's private Ray folder, ``/tmp/styx-ray-*``.
Zombies are not counted: they are dead, and only their parent (or init) can reap them.

With several pytest-xdist workers, each checks only what is its own: a process belongs to the
worker named by ``PYTEST_XDIST_WORKER`` in the environment of the process itself or of its
nearest ancestor that has one. Local clusters, daemons and load balancers inherit the worker's
environment; a test host's processes (started by its sshd, with a clean environment) descend
from the host's init, which the worker started. A process with no tagged ancestor counts for
every worker. Folders carry the worker in their name (``STYX_TMP_TAG``, set by
tests/conftest.py).
"""

from __future__ import annotations

import dataclasses
import glob
import os
import time
from pathlib import Path

MARKERS = (b"STYX_RAY_OWNER=", b"STYX_JOB_MARKER=")
WORKER_ENV = b"PYTEST_XDIST_WORKER="


def _worker_of(pid: int) -> bytes | None:
    """The xdist worker the process belongs to (see the module's docstring), or None."""
    for _ in range(64):  # a chain of parents is short; this bounds a race with pid reuse
        if pid <= 1:
            return None
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        for item in env.split(b"\0"):
            if item.startswith(WORKER_ENV):
                return item[len(WORKER_ENV) :]
        pid = int(stat.rsplit(")", 1)[-1].split()[1])
    return None


def _mine(pid: int) -> bool:
    me = os.environ.get("PYTEST_XDIST_WORKER")
    if not me:
        return True
    owner = _worker_of(pid)
    return owner is None or owner == me.encode()


@dataclasses.dataclass(frozen=True)
class Snapshot:
    processes: frozenset[int]
    folders: frozenset[str]


def _state(pid: str) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "X"
    return stat.rsplit(")", 1)[-1].split()[0]


def styx_processes(also: tuple[str, ...] = ()) -> dict[int, str]:
    """Live processes that belong to some Styx cluster: ``pid -> command line``. ``also``
    adds processes whose command line names one of those strings (a STYX_HOME)."""
    out = {}
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me or _state(pid) in ("Z", "X"):
            continue
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ours = any(b"\0" + m in b"\0" + env for m in MARKERS)
        ours = ours or "styx.agent" in cmd or any(a in cmd for a in also)
        # Serving: the serve daemon, and a service's HAProxy (its config is under serve/).
        ours = ours or "styx.serve.daemon" in cmd or "/serve/services/" in cmd
        if ours and _mine(int(pid)):
            out[int(pid)] = cmd[:200]
    return out


def ray_folders() -> set[str]:
    """Clusters' private Ray folders, and services' load-balancer socket folders (this
    worker's only, when it is one)."""
    tag = os.environ.get("STYX_TMP_TAG", "")
    return set(glob.glob(f"/tmp/styx-ray-{tag}*")) | set(glob.glob(f"/tmp/styx-lb-{tag}*"))


def snapshot() -> Snapshot:
    return Snapshot(frozenset(styx_processes()), frozenset(ray_folders()))


def new_since(before: Snapshot, also: tuple[str, ...] = ()) -> list[str]:
    """What exists now and did not in ``before``: leaked processes and folders."""
    leaks = [
        f"process {pid}: {cmd}"
        for pid, cmd in styx_processes(also).items()
        if pid not in before.processes
    ]
    leaks += [f"folder {f}" for f in sorted(ray_folders() - before.folders)]
    return leaks


def assert_none_since(before: Snapshot, also: tuple[str, ...] = (), timeout: float = 15.0) -> None:
    """After ``down``: no process of any cluster started since ``before`` is alive (waiting up
    to ``timeout`` for those on their way out), and no new private Ray folder is left."""
    deadline = time.monotonic() + timeout
    while (left := new_since(before, also)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left == [], "\n".join(left)
