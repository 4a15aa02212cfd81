"""``styx cost-report`` as a user runs it: the tables, --all, --days, --json, and bad input.

The state rows are written first (with known times, relative to now) through the repository
functions; the command runs as a real subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from styx.ops.cost import launching_for, record_launch
from styx.state import clusters as repo
from styx.state import managed_jobs as jobs_repo
from styx.state.db import Database
from styx.state.records import ClusterStatus, NewManagedJob

REPO = Path(__file__).resolve().parents[2]
H = 3600.0


def styx(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STYX_HOME": str(home)}
    env.pop("STYX_DB_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "styx.cli.main", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


class Seeder:
    """Writes clusters and jobs at given hours before now."""

    def __init__(self, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
        self.db = db
        self.now = time.time()
        self.t = self.now
        clock = types.SimpleNamespace(time=lambda: self.t)
        monkeypatch.setattr(repo, "time", clock)
        monkeypatch.setattr(jobs_repo, "time", clock)

    def at(self, hours_ago: float) -> Seeder:
        self.t = self.now - hours_ago * H
        return self

    def launch(self, name: str, hours_ago: float, node_price: float | None, nodes: int = 1) -> None:
        self.at(hours_ago)
        rec = repo.upsert_cluster(self.db, name, provider="aws", handle={}, num_nodes=nodes)
        res = {"instance_type": "m5.large", "infra": "aws/us-east-1/us-east-1a"}
        record_launch(
            self.db,
            rec,
            infra="aws/us-east-1/us-east-1a",
            resources=res,
            node_hourly_price=node_price,
        )
        repo.set_cluster_status(self.db, name, ClusterStatus.UP)

    def status(self, name: str, hours_ago: float, status: ClusterStatus) -> None:
        self.at(hours_ago)
        repo.set_cluster_status(self.db, name, status)

    def down(self, name: str, hours_ago: float) -> None:
        self.at(hours_ago)
        repo.delete_cluster(self.db, name)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "styx"


@pytest.fixture
def seeded(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Seeder]:
    home.mkdir()
    db = Database.open(f"sqlite:///{home}/state.db")
    s = Seeder(db, monkeypatch)
    s.launch("dev", 10, 0.5, nodes=2)  # $1/h for 8 h up, stopped for 2 h in between
    s.status("dev", 6, ClusterStatus.STOPPED)
    s.status("dev", 4, ClusterStatus.UP)
    s.launch("old", 24 * 45, 2.0)  # 45 days ago, 1 h, $2
    s.down("old", 24 * 45 - 1)
    job = jobs_repo.add_managed_job(db, NewManagedJob(name="train", spec={})).id
    for ago, price in ((5, 1.0), (3, 3.0)):  # an attempt and its recovery: $2 + $6
        with launching_for(job):
            s.launch(f"styx-mj-{job}", ago, price)
        s.down(f"styx-mj-{job}", ago - 2)
    yield s
    db.close()


def test_report_lists_clusters_jobs_and_the_total(home: Path, seeded: Seeder) -> None:
    r = styx(home, "cost-report")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    header = next(line for line in out.splitlines() if line.startswith("NAME"))
    assert header.split() == ["NAME", "LAUNCHED", "DURATION", "INFRA", "RESOURCES", "STATUS",
                              "$/H", "COST"]  # fmt: skip
    dev = next(line for line in out.splitlines() if line.startswith("dev "))
    assert "8h 0m" in dev and "aws/us-east-1/us-east-1a" in dev and "2x(m5.large)" in dev
    assert "UP" in dev and "$1.00" in dev and "$8.00" in dev
    assert "old" not in out  # outside the last 30 days
    assert "styx-mj-" not in out  # the job's clusters are summed under the job
    job = next(line for line in out.splitlines() if " train " in line)
    assert job.split()[2:] == ["PENDING", "2", "4h", "0m", "$8.00"]
    assert "Total: $16.00 over 3 cluster(s), last 30 days; 2 of them managed jobs'" in out


def test_all_and_days(home: Path, seeded: Seeder) -> None:
    out = styx(home, "cost-report", "--all", "--days", "60").stdout
    assert "old " in out and "TERMINATED" in out
    assert out.count("styx-mj-1 (job 1)") == 2
    assert "Total: $18.00 over 4 cluster(s), last 60 days." in out


def test_json(home: Path, seeded: Seeder) -> None:
    r = styx(home, "cost-report", "--json", "--days", "60")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    by_name = {c["name"]: c for c in data["clusters"] if c["managed_job_id"] is None}
    dev = by_name["dev"]
    assert dev["hours"] == pytest.approx(8.0, abs=1e-3) and dev["hourly_price"] == 1.0
    assert len(dev["intervals"]) == 2 and dev["ended_at"] is None
    assert by_name["old"]["cost"] == pytest.approx(2.0) and by_name["old"]["status"] == "TERMINATED"
    (job,) = data["managed_jobs"]
    assert (job["clusters"], job["cost"], job["unpriced"]) == (2, pytest.approx(8.0), 0)
    assert data["total"]["cost"] == pytest.approx(18.0, abs=1e-3)


def test_empty_state(home: Path) -> None:
    r = styx(home, "cost-report")
    assert r.returncode == 0, r.stderr
    assert "No clusters up in the last 30 days." in r.stdout
    assert "Total: $0.00 over 0 cluster(s)" in r.stdout


def test_unpriced_cluster_is_shown_as_unknown(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home.mkdir()
    db = Database.open(f"sqlite:///{home}/state.db")
    s = Seeder(db, monkeypatch)
    s.launch("mystery", 1, float("nan"))
    db.close()
    out = styx(home, "cost-report").stdout
    line = next(line for line in out.splitlines() if line.startswith("mystery"))
    assert line.split()[-2:] == ["-", "-"]
    assert "1 without a known price, not counted" in out


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (["--bogus"], "No such option '--bogus'"),
        (["--days", "0"], "'--days'"),
        (["--days", "many"], "'--days'"),
        (["extra"], "unexpected extra argument"),
    ],
)
def test_bad_options_are_usage_errors(home: Path, args: list[str], what: str) -> None:
    r = styx(home, "cost-report", *args)
    assert r.returncode == 2
    assert "Error [invalid-usage]" in r.stderr and what in r.stderr
    assert "styx cost-report --help" in r.stderr
    assert "Traceback" not in r.stderr


def test_invalid_price_in_config_is_reported(home: Path) -> None:
    home.mkdir()
    (home / "config.yaml").write_text("local:\n  hourly_price: -2\n")
    r = styx(home, "cost-report")
    assert r.returncode != 0
    assert "Error [invalid-config]" in r.stderr and "local.hourly_price" in r.stderr
    assert "Hint:" in r.stderr and "Traceback" not in r.stderr


def test_listed_in_help_and_reads_without_sqlalchemy(home: Path, seeded: Seeder) -> None:
    assert "cost-report" in styx(home, "--help").stdout
    code = (
        "import sys; from styx.cli.main import main; main(['cost-report']); "
        "print('sqlalchemy' in sys.modules, file=sys.stderr)"
    )
    env = {**os.environ, "STYX_HOME": str(home)}
    env.pop("STYX_DB_URL", None)
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.stderr.strip().splitlines()[-1] == "False", r.stderr
