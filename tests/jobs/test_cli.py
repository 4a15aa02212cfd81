"""``styx jobs`` end to end: the CLI starts the daemon, which uses the IN-MEMORY backend."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

DIAMOND = """\
name: diamond
---
name: A
run: a
---
name: B
run: b
depends_on: [A]
---
name: C
run: c
depends_on: [A]
---
name: D
run: d
depends_on: [B, C]
"""


def styx(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "styx.cli.main", *args],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = dict(os.environ)
    e.pop("STYX_DB_URL", None)
    e.update(
        STYX_HOME=str(tmp_path / "home"),
        STYX_JOBS_BACKEND="memory",
        STYX_JOBS_SIM_DURATION="0.3",
        STYX_JOBS_IDLE_EXIT="1",
    )
    return e


def test_launch_queue_logs_cancel(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "dag.yaml").write_text(DIAMOND)
    (tmp_path / "long.yaml").write_text("name: long\nrun: sleep 1\n")
    out = styx(env, "jobs", "launch", "--no-controller", str(tmp_path / "long.yaml"))
    assert out.returncode == 0 and "Managed job 1 queued" in out.stdout
    assert "Cancelling: 1" in styx(env, "jobs", "cancel", "1").stdout
    out = styx(env, "jobs", "launch", str(tmp_path / "dag.yaml"))
    assert "DAG run 1 queued: jobs 2, 3, 4, 5" in out.stdout, out
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        table = styx(env, "jobs", "queue").stdout
        if table.count("SUCCEEDED") == 5 and "CANCELLED" in table:
            break
        time.sleep(0.2)
    assert "run 1  diamond" in table and "└─ D" in table, table
    assert table.count("SUCCEEDED") == 5, table
    logs = styx(env, "jobs", "logs", "5")
    assert logs.returncode == 0 and "SUCCEEDED" in logs.stdout
    # The attempt's output, saved by the controller before teardown, follows its RUNNING line.
    running, saved = logs.stdout.splitlines()[2:4]
    assert "RUNNING" in running and saved.startswith("(simulated) ran in sim-1"), logs.stdout


def test_queue_restarts_a_dead_daemon_while_jobs_are_active(
    env: dict[str, str], tmp_path: Path
) -> None:
    env["STYX_JOBS_SIM_DURATION"] = "3"
    (tmp_path / "t.yaml").write_text("name: t\nrun: train\n")
    assert styx(env, "jobs", "launch", str(tmp_path / "t.yaml")).returncode == 0
    jobs_dir = Path(env["STYX_HOME"]) / "jobs"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "RUNNING" not in styx(env, "jobs", "queue").stdout:
        time.sleep(0.1)
    for name in ("supervisor.pid", "controller.pid"):  # both processes of the daemon die
        os.kill(int((jobs_dir / name).read_text()), 9)
    time.sleep(0.5)
    out = styx(env, "jobs", "queue")
    assert "started it again" in out.stderr, out
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "SUCCEEDED" not in styx(env, "jobs", "queue").stdout:
        time.sleep(0.2)
    logs = styx(env, "jobs", "logs", "--no-follow", "1").stdout
    assert "SUCCEEDED" in logs and logs.count("RECOVERING") == 1, logs
    # A queue with nothing active starts nothing.
    time.sleep(2.5)  # STYX_JOBS_IDLE_EXIT=1: the daemon leaves
    assert "started it again" not in styx(env, "jobs", "queue").stderr


def test_kill_9_of_the_daemon_then_jobs_continue(env: dict[str, str], tmp_path: Path) -> None:
    env["STYX_JOBS_SIM_DURATION"] = "4"
    (tmp_path / "t.yaml").write_text("name: t\nrun: train\n")
    for i in range(5):
        flags = ["--no-controller"] if i < 4 else []
        assert styx(env, "jobs", "launch", *flags, str(tmp_path / "t.yaml")).returncode == 0
    pid_file = Path(env["STYX_HOME"]) / "jobs" / "controller.pid"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and styx(env, "jobs", "queue").stdout.count("RUNNING") < 5:
        time.sleep(0.1)
    os.kill(int(pid_file.read_text()), 9)
    # The next command that launches starts a new daemon, which resumes the five jobs. The
    # simulated clusters died with the old process, so they come back through recovery.
    (tmp_path / "u.yaml").write_text("name: u\nrun: eval\n")
    assert styx(env, "jobs", "launch", str(tmp_path / "u.yaml")).returncode == 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        table = styx(env, "jobs", "queue").stdout
        if table.count("SUCCEEDED") == 6:
            break
        time.sleep(0.2)
    assert table.count("SUCCEEDED") == 6, table
    for job_id in range(1, 7):
        logs = styx(env, "jobs", "logs", "--no-follow", str(job_id)).stdout
        assert logs.count("SUCCEEDED") == 1 and logs.count("STARTING") == 1, logs
        # Jobs 1-5 lost their (simulated) clusters with the killed daemon: recovered once.
        assert logs.count("RECOVERING") == (1 if job_id <= 5 else 0), logs
