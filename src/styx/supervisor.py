"""Keeping one process alive: exclusive ``flock``s and a supervisor loop that restarts a child.

Used by both of Styx's long-lived daemons: the head-node agent (``styx.agent.daemon``) and the
managed-jobs controller (``styx.jobs.daemon``). It sits at the bottom of the house, next to
:mod:`styx.errors` and :mod:`styx.paths`, and imports only the standard library, so the agent
may use it on a node that has nothing else.

Single instances are guaranteed by ``flock``s, which the kernel releases when their holder dies,
even by ``kill -9``; so "is it running?" never trusts a stale pid file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger("styx.supervisor")


@contextlib.contextmanager
def flock(path: Path, *, blocking: bool) -> Iterator[int | None]:
    """Hold an exclusive lock on ``path`` (created 0600) for the block; yields the locked file
    descriptor (to hand to a child with ``pass_fds``), or None when not ``blocking`` and
    another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield None
            return
        yield fd
    finally:
        os.close(fd)


def is_locked(path: Path) -> bool:
    """Whether some live process holds the lock at ``path``."""
    if not path.exists():
        return False
    with flock(path, blocking=False) as fd:
        return fd is None


@dataclasses.dataclass(frozen=True, slots=True)
class RestartPolicy:
    """When a supervised child is started again.

    ``done_on_clean_exit``: a child that exits 0 ends the supervisor (else it is restarted
    too). A child that dies within ``healthy_after_s`` waits twice as long as the last one
    before its restart, from ``min_delay_s`` up to ``max_delay_s``; one that lived longer waits
    ``min_delay_s``. With ``max_crashes``, that many non-zero exits within ``crash_window_s``
    make the supervisor give up (exit 1).
    """

    done_on_clean_exit: bool = False
    min_delay_s: float = 0.1
    max_delay_s: float = 5.0
    healthy_after_s: float = 30.0
    max_crashes: int | None = None
    crash_window_s: float = 60.0


def supervise(
    spawn: Callable[[], subprocess.Popen[bytes]],
    policy: RestartPolicy,
    *,
    stop_requested: Callable[[], bool] = lambda: False,
    stop_grace_s: float = 30.0,
) -> int:
    """Run ``spawn()``'s child and start a new one whenever it ends, per ``policy``, until
    SIGTERM or SIGINT (forwarded to the child as SIGTERM, which gets ``stop_grace_s`` to exit
    before it is killed) or ``stop_requested()``. SIGHUP is ignored. Returns the exit code for
    the supervisor: 0, or 1 when the child crashed too often. Call from the main thread."""
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    crashes: list[float] = []
    delay = policy.min_delay_s
    code = 0
    try:
        while not stopping and not stop_requested():
            child = spawn()
            if stopping:  # the signal came while it started: it was not told yet
                child.send_signal(signal.SIGTERM)
            began = time.monotonic()
            returncode = child.wait()
            if stopping or stop_requested():
                break
            if returncode == 0 and policy.done_on_clean_exit:
                return 0
            now = time.monotonic()
            if returncode != 0:
                crashes = [t for t in crashes if now - t < policy.crash_window_s] + [now]
                log.warning("child %s exited with %s; starting a new one", child.pid, returncode)
                if policy.max_crashes is not None and len(crashes) >= policy.max_crashes:
                    log.error(
                        "child died %d times in %.0f s; giving up",
                        len(crashes), policy.crash_window_s,
                    )  # fmt: skip
                    code = 1
                    break
            healthy = now - began > policy.healthy_after_s
            delay = policy.min_delay_s if healthy else min(delay * 2, policy.max_delay_s)
            time.sleep(delay)
    finally:
        if child is not None:
            try:
                child.wait(timeout=stop_grace_s)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    return code
