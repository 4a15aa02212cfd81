"""Confirmation prompts: asked on a terminal (answered here through a pseudo-terminal),
skipped with -y, and the stated rule without a terminal (styx.cli.confirm.NO_TTY_RULE)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "STYX_HOME": str(home)}
    env.pop("STYX_DB_URL", None)
    return env


def styx(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """No terminal: stdin is /dev/null, as in a script or CI."""
    return subprocess.run(
        [sys.executable, "-m", "styx.cli.main", *args],
        env=_env(home),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def styx_on_tty(home: Path, *args: str, answer: str | None) -> tuple[int, str]:
    """Run on a pseudo-terminal; type ``answer`` once "Proceed?" shows (None: expect no
    question). Returns the exit code and everything the terminal showed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "styx.cli.main", *args],
        env=_env(home),
        cwd=REPO,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        close_fds=True,
    )
    os.close(follower)
    seen = b""
    answered = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    data = os.read(leader, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                seen += data
            if not answered and b"Proceed?" in seen:
                assert answer is not None, seen.decode(errors="replace")
                os.write(leader, answer.encode() + b"\n")
                answered = True
            if proc.poll() is not None and not ready:
                break
        code = proc.wait(timeout=30)
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
    text = seen.decode(errors="replace").replace("\r\n", "\n")
    if answer is not None:
        assert answered, text
    return code, text


def _stopped_cluster(home: Path, name: str) -> None:
    code = (
        "from styx.state.db import Database\n"
        "from styx.state.clusters import upsert_cluster, set_cluster_status\n"
        "from styx.state.records import ClusterStatus as S\n"
        "db = Database.open()\n"
        f"upsert_cluster(db, {name!r}, provider='local', handle={{}}, status=S.UP)\n"
        f"set_cluster_status(db, {name!r}, S.STOPPED, message='test')\n"
    )
    subprocess.run([sys.executable, "-c", code], env=_env(home), check=True, timeout=60)


def _up_cluster(home: Path, name: str) -> None:
    code = (
        "from styx.state.db import Database\n"
        "from styx.state.clusters import upsert_cluster\n"
        "from styx.state.records import ClusterStatus as S\n"
        f"upsert_cluster(Database.open(), {name!r}, provider='local', handle={{}}, status=S.UP)\n"
    )
    subprocess.run([sys.executable, "-c", code], env=_env(home), check=True, timeout=60)


def test_stop_asks_and_no_changes_nothing(tmp_path: Path) -> None:
    _stopped_cluster(tmp_path, "c1")
    code, shown = styx_on_tty(tmp_path, "stop", "c1", answer="n")
    assert "Stopping cluster(s) c1. Proceed? [Y/n]" in shown
    assert code == 1 and "nothing was changed" in shown
    assert "already stopped" not in shown


def test_stop_asks_and_yes_proceeds(tmp_path: Path) -> None:
    _stopped_cluster(tmp_path, "c1")
    code, shown = styx_on_tty(tmp_path, "stop", "c1", answer="y")
    assert code == 0, shown
    assert "cluster 'c1' is already stopped" in shown


def test_down_asks_and_no_keeps_the_cluster(tmp_path: Path) -> None:
    _stopped_cluster(tmp_path, "c1")
    code, shown = styx_on_tty(tmp_path, "down", "c1", answer="n")
    assert "Tearing down cluster(s) c1. Proceed? [Y/n]" in shown and code == 1
    assert "c1" in styx(tmp_path, "status").stdout


def test_yes_flag_skips_the_question_on_a_terminal(tmp_path: Path) -> None:
    _stopped_cluster(tmp_path, "c1")
    code, shown = styx_on_tty(tmp_path, "stop", "c1", "-y", answer=None)
    assert code == 0 and "Proceed?" not in shown and "already stopped" in shown


def test_launch_of_a_new_cluster_asks(tmp_path: Path) -> None:
    code, shown = styx_on_tty(
        tmp_path, "launch", "examples/hello.yaml", "-c", "fresh", "--infra", "local",
        answer="n",
    )  # fmt: skip
    assert "Launching a new cluster 'fresh'. Proceed? [Y/n]" in shown
    assert code == 1 and "fresh" not in styx(tmp_path, "status").stdout


def test_launch_answered_yes_goes_on(tmp_path: Path) -> None:
    # A request nothing fits: past the question, the optimizer says so (exit 6).
    code, shown = styx_on_tty(
        tmp_path, "launch", "examples/hello.yaml", "-c", "big", "--infra", "local",
        "--cpus", "100000", answer="",
    )  # fmt: skip
    assert "Proceed? [Y/n]" in shown
    assert code == 6 and "resources" in shown.lower()


def test_without_a_terminal_launch_proceeds_without_asking(tmp_path: Path) -> None:
    r = styx(
        tmp_path, "launch", "examples/hello.yaml", "-c", "big", "--infra", "local",
        "--cpus", "100000",
    )  # fmt: skip
    assert "Proceed?" not in r.stdout + r.stderr
    assert r.returncode == 6, r.stderr


@pytest.mark.parametrize("command", ["stop", "down"])
def test_without_a_terminal_destructive_commands_need_yes(tmp_path: Path, command: str) -> None:
    _stopped_cluster(tmp_path, "c1")
    r = styx(tmp_path, command, "c1")
    assert r.returncode == 2 and "confirmation-required" in r.stderr, r.stderr
    assert "-y" in r.stderr and "not a terminal" in r.stderr
    assert "c1" in styx(tmp_path, "status").stdout
    assert styx(tmp_path, "stop", "c1", "-y").returncode == 0


def test_cancel_all_without_a_terminal_needs_yes(tmp_path: Path) -> None:
    assert styx(tmp_path, "cancel", "nope", "--all").returncode == 3  # unknown: not asked
    _up_cluster(tmp_path, "c2")
    r = styx(tmp_path, "cancel", "c2", "--all")
    assert r.returncode == 2 and "confirmation-required" in r.stderr
    assert "Cancelling all jobs on cluster 'c2'" in r.stderr
    r = styx(tmp_path, "cancel", "c2", "--all", "-y")  # asked the agent, which is not there
    assert "confirmation-required" not in r.stderr


def test_unknown_cluster_fails_before_any_question(tmp_path: Path) -> None:
    code, shown = styx_on_tty(tmp_path, "down", "nope", answer=None)
    assert code == 3 and "Proceed?" not in shown and "cluster-not-found" in shown


def test_launch_checks_the_task_before_asking(tmp_path: Path) -> None:
    task = tmp_path / "volumes.yaml"
    task.write_text("volumes: {/data: my-volume}\nrun: ls /data\n")  # not launchable yet
    code, shown = styx_on_tty(tmp_path, "launch", str(task), "-c", "vol", answer=None)
    assert code == 4 and "not-supported" in shown and "Proceed?" not in shown
