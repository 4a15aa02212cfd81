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
    assert "run 1  diamond" in table and "└─ D (after B, C)" in table, table
    assert "├─ B (after A)" in table and "├─ A " in table, table
    assert table.count("SUCCEEDED") == 5, table
    logs = styx(env, "jobs", "logs", "5")
    assert logs.returncode == 0 and "SUCCEEDED" in logs.stdout
    # The attempt's output, saved by the controller before teardown, follows its RUNNING line.
    header, _, _, running, saved = logs.stdout.splitlines()[:5]
    assert header == "Managed job 5 (D) on cluster styx-mj-5: SUCCEEDED", logs.stdout
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
        out = styx(env, "jobs", "logs", "--no-follow", str(job_id)).stdout
        header, logs = out.split("\n", 1)
        assert header.startswith(f"Managed job {job_id} (") and header.endswith(": SUCCEEDED")
        assert logs.count("SUCCEEDED") == 1 and logs.count("STARTING") == 1, logs
        # Jobs 1-5 lost their (simulated) clusters with the killed daemon: recovered once.
        assert logs.count("RECOVERING") == (1 if job_id <= 5 else 0), logs


def test_launch_refuses_what_could_never_run_with_its_code(
    env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "big.yaml").write_text("run: x\nresources: {accelerators: A100:8}\n")
    out = styx(env, "jobs", "launch", "-y", str(tmp_path / "big.yaml"))
    assert out.returncode == 6 and "Error [managed-job-infeasible]" in out.stderr, out
    assert "Hint: " in out.stderr and "queued" not in out.stdout
    (tmp_path / "s.yaml").write_text("name: s\nrun: x\nsecrets: {TOKEN: null}\n")
    out = styx(env, "jobs", "launch", "--no-controller", str(tmp_path / "s.yaml"))
    assert out.returncode == 2 and "Error [missing-value]" in out.stderr, out
    out = styx(
        env, "jobs", "launch", "--no-controller", "--secret", "TOKEN=xyzzy-42", "--env", "A=1",
        str(tmp_path / "s.yaml"),
    )  # fmt: skip
    assert out.returncode == 0 and "Managed job 1 queued" in out.stdout, out
    assert "xyzzy-42" not in out.stdout + out.stderr
    assert "xyzzy-42" in (Path(env["STYX_HOME"]) / "jobs" / "secrets" / "1.json").read_text()


def test_no_controller_holds_it_until_a_launch_without_the_flag(
    env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "t.yaml").write_text("name: t\nrun: train\n")
    out = styx(env, "jobs", "launch", "--no-controller", str(tmp_path / "t.yaml"))
    assert "controller was not started (--no-controller)" in out.stderr, out
    for command in (("jobs", "queue"), ("jobs", "logs", "--no-follow", "1")):
        out = styx(env, *command)
        assert out.returncode == 0 and "started it again" not in out.stderr, out
    assert "queued with --no-controller" in styx(env, "jobs", "queue").stderr
    assert not (Path(env["STYX_HOME"]) / "jobs" / "controller.pid").exists()
    assert styx(env, "jobs", "launch", str(tmp_path / "t.yaml")).returncode == 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if styx(env, "jobs", "queue").stdout.count("SUCCEEDED") == 2:
            break
        time.sleep(0.2)
    assert styx(env, "jobs", "queue").stdout.count("SUCCEEDED") == 2


def test_ctrl_c_on_logs_says_the_job_keeps_running(env: dict[str, str], tmp_path: Path) -> None:
    import signal

    env["STYX_JOBS_SIM_DURATION"] = "30"
    (tmp_path / "t.yaml").write_text("name: t\nrun: train\n")
    assert styx(env, "jobs", "launch", str(tmp_path / "t.yaml")).returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "styx.cli.main", "jobs", "logs", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # As from a terminal: a suite started in the background inherits SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("Managed job 1 (t)")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "RUNNING" not in proc.stdout.readline():
            pass
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert "Stopped following managed job 1; it keeps running." in err, err
    assert "Aborted" not in err and "Interrupted" not in err
    assert "RUNNING" in styx(env, "jobs", "queue").stdout
    assert "Cancelling: 1" in styx(env, "jobs", "cancel", "1").stdout
