"""Finding and killing a job's processes on one node.

Each user process the agent starts carries ``STYX_JOB_MARKER=<agent id>:<job id>`` in its
environment and runs in its own session. To kill a job we take every process whose environment
has the marker (which also finds grandchildren that left the process group with ``setsid``) plus
all their descendants, send SIGTERM, wait a grace period, then SIGKILL whatever is left and look
again, until none is found.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

MARKER_ENV = "STYX_JOB_MARKER"


def _psutil() -> ModuleType:
    """psutil, or the copy Ray vendors when psutil itself is not installed."""
    try:
        import psutil
    except ImportError:
        spec = importlib.util.find_spec("ray")
        if spec is None or not spec.submodule_search_locations:
            raise
        vendored = Path(next(iter(spec.submodule_search_locations))) / "thirdparty_files"
        sys.path.append(str(vendored))
        import psutil
    return psutil


def marked(marker: str, prefix: bool = False) -> list[int]:
    """PIDs of this user's processes whose environment carries ``marker`` (or, with
    ``prefix``, any marker that starts with it)."""
    return marked_with(MARKER_ENV, marker, prefix)


def marked_with(name: str, value: str, prefix: bool = False) -> list[int]:
    """PIDs of this user's processes (but this one) whose environment has ``name`` set to
    ``value`` (or, with ``prefix``, to anything that starts with it)."""
    psutil = _psutil()
    me = os.getpid()
    found: list[int] = []
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == me:
            continue
        try:
            got = proc.environ().get(name)
            if got is not None and (got.startswith(value) if prefix else got == value):
                found.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    return found


def _with_descendants(pids: Iterable[int]) -> list[object]:
    psutil = _psutil()
    procs: dict[int, object] = {}
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            procs[pid] = proc
            for child in proc.children(recursive=True):
                procs[child.pid] = child
        except psutil.Error:
            continue
    return list(procs.values())


def kill_tree(pids: Iterable[int], grace_s: float) -> None:
    """SIGTERM ``pids`` and all their descendants, then SIGKILL survivors after ``grace_s``."""
    psutil = _psutil()
    procs = _with_descendants(pids)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGTERM)  # type: ignore[attr-defined]
    alive = _wait_gone(procs, grace_s)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()  # type: ignore[attr-defined]
    _wait_gone(alive, 1.0)


def _wait_gone(procs: list[object], timeout: float) -> list[object]:
    """Wait until every process has ended (a zombie counts: it is dead, and a process that is
    not its parent cannot reap it); returns those still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    alive = procs
    while True:
        alive = [p for p in alive if _alive(p.pid)]  # type: ignore[attr-defined]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.02)


def kill_marked(
    marker: str, grace_s: float = 1.0, extra_pids: Iterable[int] = (), prefix: bool = False
) -> int:
    """Kill every process of a job (of every job of an agent, with ``prefix``) on this node;
    returns how many were found."""
    total = 0
    pids = list(extra_pids)
    deadline = time.monotonic() + grace_s + 10.0
    while time.monotonic() < deadline:
        pids = sorted(set(pids) | set(marked(marker, prefix)))
        alive = [p for p in pids if _alive(p)]
        if not alive:
            break
        total += len(alive)
        kill_tree(alive, grace_s)
        pids, grace_s = [], 0.2  # later rounds catch forks that raced the first one
    return total


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    psutil = _psutil()
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False
