"""The leak check run after every cluster test module: no process, no folder left behind.

A cluster's processes are found the way Styx itself finds them, by ownership, not by command
lines: Ray's processes carry ``STYX_RAY_OWNER`` (and run in a session recorded in their private
folder), job processes carry ``STYX_JOB_MARKER``, agents and supervisors name their root on
their command line, as do the serve daemon and each service's HAProxy. Folders: each
cluster's private Ray folder, ``/tmp/styx-ray-*``.
Zombies are not counted: they are dead, and only their parent (or init) can reap them.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import time
from pathlib import Path

MARKERS = (b"STYX_RAY_OWNER=", b"STYX_JOB_MARKER=")


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
        if ours:
            out[int(pid)] = cmd[:200]
    return out


def ray_folders() -> set[str]:
    """Clusters' private Ray folders, and services' load-balancer socket folders."""
    return set(glob.glob("/tmp/styx-ray-*")) | set(glob.glob("/tmp/styx-lb-*"))


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
