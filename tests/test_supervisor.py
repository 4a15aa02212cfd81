"""The shared supervisor: flocks and the restart loop both daemons run (agent, jobs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from styx.supervisor import RestartPolicy, flock, is_locked, supervise

FAST = {"min_delay_s": 0.01, "max_delay_s": 0.02}


def _python(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])


def test_flock_is_exclusive_across_processes(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    assert not is_locked(lock)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from styx.supervisor import flock
            with flock(Path({str(lock)!r}), blocking=False) as fd:
                print("held" if fd is not None else "taken", flush=True)
                time.sleep(30)
        """),
        ],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        assert is_locked(lock)
        with flock(lock, blocking=False) as fd:
            assert fd is None
    finally:
        holder.kill()
        holder.wait()
    assert not is_locked(lock)  # released by the kernel when its holder died
    with flock(lock, blocking=False) as fd:
        assert fd is not None and fd >= 0


def test_a_crashing_child_is_restarted_until_too_many_crashes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spawned: list[int] = []

    def spawn() -> subprocess.Popen[bytes]:
        spawned.append(1)
        return _python("raise SystemExit(3)")

    policy = RestartPolicy(max_crashes=3, crash_window_s=60.0, **FAST)  # type: ignore[arg-type]
    assert supervise(spawn, policy) == 1
    assert len(spawned) == 3


def test_a_clean_exit_ends_the_supervisor_when_the_policy_says_so() -> None:
    codes = iter([5, 0])
    spawned: list[int] = []

    def spawn() -> subprocess.Popen[bytes]:
        spawned.append(1)
        return _python(f"raise SystemExit({next(codes)})")

    policy = RestartPolicy(done_on_clean_exit=True, **FAST)  # type: ignore[arg-type]
    assert supervise(spawn, policy) == 0
    assert len(spawned) == 2


def test_clean_exits_are_restarted_too_until_a_stop_is_requested() -> None:
    spawned: list[int] = []

    def spawn() -> subprocess.Popen[bytes]:
        spawned.append(1)
        return _python("pass")

    policy = RestartPolicy(**FAST)  # type: ignore[arg-type]
    assert supervise(spawn, policy, stop_requested=lambda: len(spawned) >= 3) == 0
    assert len(spawned) == 3


def test_sigterm_stops_the_child_and_the_supervisor(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script = textwrap.dedent(f"""
        import subprocess, sys
        from styx.supervisor import RestartPolicy, supervise

        def spawn():
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            open({str(pidfile)!r}, "w").write(str(child.pid))
            return child

        sys.exit(supervise(spawn, RestartPolicy(), stop_grace_s=10))
    """)
    sup = subprocess.Popen(
        [sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    )
    deadline = time.monotonic() + 20
    while not pidfile.exists() or not pidfile.read_text():
        assert time.monotonic() < deadline and sup.poll() is None
        time.sleep(0.02)
    child = int(pidfile.read_text())
    sup.send_signal(signal.SIGTERM)
    assert sup.wait(timeout=15) == 0
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # reaped by the supervisor: gone
