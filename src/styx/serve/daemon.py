"""The serve controller as a local daemon, started by ``styx serve up``.

As the managed-jobs daemon (:mod:`styx.jobs.daemon`), in two processes: a *supervisor* that
holds ``<home>/serve/controller.lock`` and restarts the *controller* whenever it dies (a
``kill -9``, a crash); the controller exits after ``STYX_SERVE_IDLE_EXIT`` seconds (default
60) with no service, and the supervisor with it. The load balancers are separate processes
(:mod:`styx.serve.haproxy`): serving goes on while the controller restarts.

``STYX_SERVE_TICK`` sets seconds between a controller's rounds (default 2).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from styx import paths
from styx.supervisor import RestartPolicy, flock, is_locked, supervise

#: A controller that exits 0 (idle) ends the daemon; one that dies is started again after 1 s.
_RESTARTS = RestartPolicy(
    done_on_clean_exit=True, min_delay_s=0.5, max_delay_s=2.0, max_crashes=10, crash_window_s=60.0
)


def serve_dir() -> Path:
    """Where the daemon keeps its lock, pids and log."""
    d = paths.home() / "serve"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return d


def log_path() -> Path:
    return serve_dir() / "controller.log"


def is_running() -> bool:
    """True when a daemon (supervisor or controller) holds the lock."""
    return is_locked(serve_dir() / "controller.lock")


def ensure_running() -> bool:
    """Start the daemon in the background unless one is running; True when started."""
    if is_running():
        return False
    with log_path().open("ab") as log_file:
        subprocess.Popen(
            [sys.executable, "-m", "styx.serve.daemon"],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, start_new_session=True,
        )  # fmt: skip
    return True


def pids() -> dict[str, int]:
    """The supervisor's and the controller's pids, as last written."""
    out = {}
    for role in ("supervisor", "controller"):
        try:
            out[role] = int((serve_dir() / f"{role}.pid").read_text())
        except (OSError, ValueError):
            continue
    return out


def _controller_main() -> int:
    from styx.serve.controller import Controller
    from styx.state.db import Database

    (serve_dir() / "controller.pid").write_text(str(os.getpid()))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    controller = Controller(Database.open(), tick_s=float(os.environ.get("STYX_SERVE_TICK", "2")))

    async def run() -> None:
        # SIGUSR1 writes every task's stack to the log: what a stuck controller waits on.
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, _dump_tasks)
        await controller.run(idle_exit_s=float(os.environ.get("STYX_SERVE_IDLE_EXIT", "60")))

    asyncio.run(run())
    return 0


def _dump_tasks() -> None:
    for task in asyncio.all_tasks():
        task.print_stack(file=sys.stderr)
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    """Run the daemon here (exits 0 at once when another one runs)."""
    args = sys.argv[1:] if argv is None else argv
    os.umask(0o077)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args == ["--controller"]:
        return _controller_main()
    with flock(serve_dir() / "controller.lock", blocking=False) as lock_fd:
        if lock_fd is None:
            return 0

        def spawn() -> subprocess.Popen[bytes]:  # it inherits the lock, held while either lives
            return subprocess.Popen(
                [sys.executable, "-m", "styx.serve.daemon", "--controller"], pass_fds=(lock_fd,)
            )

        (serve_dir() / "supervisor.pid").write_text(str(os.getpid()))
        return supervise(spawn, _RESTARTS)


if __name__ == "__main__":
    sys.exit(main())
