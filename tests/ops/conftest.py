"""End-to-end fixtures: the real `styx` CLI in a subprocess, an isolated STYX_HOME, real Ray."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests import leaks

REPO = Path(__file__).resolve().parents[2]


def wheelhouse() -> str | None:
    """The wheelhouse with Ray that remote hosts install from (scripts/test.sh builds it), or
    None when there is none."""
    path = os.environ.get("STYX_TEST_WHEELHOUSE") or str(REPO / ".wheelhouse")
    return path if Path(path).is_dir() and any(Path(path).glob("ray-*.whl")) else None


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Styx:
    """Runs `styx ...` with its own STYX_HOME, as a user would."""

    home: Path
    extra_env: dict[str, str] = dataclasses.field(default_factory=dict)

    def env(self) -> dict[str, str]:
        user_home = self.home.with_name(self.home.name + "-user")  # a HOME of its own, too
        if "HOME" not in self.extra_env:
            user_home.mkdir(exist_ok=True)
        env = {**os.environ, "STYX_HOME": str(self.home), "HOME": str(user_home)}
        env.pop("STYX_DB_URL", None)
        return {**env, **self.extra_env}

    def __call__(self, *args: str, timeout: float = 180, check: bool = False) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "styx.cli.main", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
        )
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"styx {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        assert "Traceback" not in proc.stderr, proc.stderr
        return result


def own_processes(marker: str) -> list[str]:
    """Command lines of live processes that mention ``marker`` (a cluster's folder)."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmd:
            out.append(f"{pid}: {cmd[:200]}")
    return out


def wait_for(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def cluster_row(styx: Styx, name: str) -> dict | None:
    """The cluster's row of ``styx status --json``, or None."""
    import json

    rows = json.loads(styx("status", "--json", check=True).stdout)
    return next((r for r in rows if r["name"] == name), None)


def kill_9_mid_launch_then_down(
    styx: Styx, name: str, launch_args: list[str], made: Callable[[], bool]
) -> None:
    """``styx launch LAUNCH_ARGS -c NAME -y`` killed with SIGKILL once ``made()`` (the infra
    has begun making the cluster); then the record is there, ``status -r`` works and
    ``down`` removes it. The caller checks the infra itself is empty."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "styx.cli.main", "launch", *launch_args, "-c", name, "-y"],
        env=styx.env(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(made, 120, "instances to exist")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert cluster_row(styx, name) is not None  # recorded before anything was created
    assert styx("status", "-r").returncode == 0
    r = styx("down", name, "-y", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert cluster_row(styx, name) is None


def assert_no_leaks(before: leaks.Snapshot, home: Path, timeout: float = 15.0) -> None:
    """After ``down``: no process of any cluster started since ``before`` (found by the
    ownership marks Styx itself uses, or naming ``home``), no private Ray folder."""
    leaks.assert_none_since(before, (str(home),), timeout)


@pytest.fixture(scope="module")
def styx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Styx]:
    before = leaks.snapshot()
    home = tmp_path_factory.mktemp("styx-home")
    runner = Styx(home)
    yield runner
    # Whatever a test left behind is torn down, and must leave nothing of ours.
    runner("down", "--all", "-y", timeout=300)
    assert_no_leaks(before, home)
