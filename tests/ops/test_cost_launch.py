"""Prices recorded at launch: the optimizer's candidate, config prices for this machine and SSH
pools (and bad ones refused), and a restart that keeps the price it was launched at.

The launch path is the real one up to provisioning (optimizer, local provider's provision,
which only makes folders); nothing starts Ray here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from styx.errors import ConfigError
from styx.ops import stages
from styx.ops.cost import launching_for
from styx.ops.pipeline import Pipeline
from styx.providers import local, ssh_pools
from styx.spec.config import Config
from styx.spec.task import Task
from styx.state import clusters as repo
from styx.state.db import Database
from styx.state.records import ClusterStatus
from styx.state.usage import get_usage


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    styx_home = tmp_path / "styx"
    styx_home.mkdir()
    monkeypatch.setenv("STYX_HOME", str(styx_home))
    monkeypatch.delenv("STYX_DB_URL", raising=False)
    return styx_home


@pytest.fixture
def db(home: Path) -> Iterator[Database]:
    database = Database.open(f"sqlite:///{home}/state.db")
    yield database
    database.close()


def write_config(home: Path, text: str) -> None:
    path = home / "config.yaml"
    path.write_text(text)


def provision(db: Database, name: str) -> None:
    task = Task(run="true")
    placement = stages.choose_placement(task, name)
    stages.provision(db, Pipeline(quiet=True), task, name, placement)


def test_local_is_free_by_default(db: Database) -> None:
    provision(db, "free")
    rec = repo.require_cluster(db, "free")
    u = get_usage(db, rec.cluster_id)
    assert u is not None
    assert (u.hourly_price, u.infra, u.provider, u.num_nodes) == (0.0, "local", "local", 1)
    assert u.launched_at == rec.created_at and u.managed_job_id is None


def test_config_price_is_recorded_and_a_restart_keeps_it(db: Database, home: Path) -> None:
    write_config(home, "local:\n  hourly_price: 0.75\n")
    provision(db, "priced")
    cid = repo.require_cluster(db, "priced").cluster_id
    usage = get_usage(db, cid)
    assert usage is not None and usage.hourly_price == 0.75
    repo.set_cluster_status(db, "priced", ClusterStatus.STOPPED)
    write_config(home, "local:\n  hourly_price: 5\n")  # the price changes later
    assert local.offers(Task())[0].hourly_price == 5.0
    provision(db, "priced")  # started again: the same incarnation, at its launch price
    assert repo.require_cluster(db, "priced").cluster_id == cid
    assert get_usage(db, cid) == usage


def test_launch_inside_launching_for_names_the_job(db: Database) -> None:
    with launching_for(42):
        provision(db, "styx-mj-42")
    u = get_usage(db, repo.require_cluster(db, "styx-mj-42").cluster_id)
    assert u is not None and u.managed_job_id == 42


def test_ssh_pool_prices_from_config(home: Path) -> None:
    (home / ssh_pools.POOLS_FILE).write_text(
        "lab:\n  hosts: [198.18.77.1, 198.18.77.2]\ngpu:\n  hosts: [198.18.77.3]\n"
    )
    task = Task.from_dict({"resources": {"infra": "ssh"}})
    assert {o.name: o.hourly_price for o in ssh_pools.offers(task)} == {"lab": 0.0, "gpu": 0.0}
    write_config(
        home, "ssh:\n  hourly_price: 0.5\n  context_configs:\n    gpu:\n      hourly_price: 2\n"
    )
    assert {o.name: o.hourly_price for o in ssh_pools.offers(task)} == {"lab": 0.5, "gpu": 2.0}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"local": {"hourly_price": -1}}, "invalid-value"),
        ({"local": {"hourly_price": "cheap"}}, "invalid-type"),
        ({"local": {"hourly_price": True}}, "invalid-type"),
        ({"ssh": {"hourly_price": float("inf")}}, "invalid-value"),
        ({"ssh": {"context_configs": {"lab": {"hourly_price": -0.5}}}}, "invalid-value"),
        ({"ssh": {"context_configs": {"lab": {"hourly_prise": 1}}}}, "unknown-key"),
    ],
)
def test_bad_config_price_is_refused(data: dict[str, object], reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_dict(data)
    assert info.value.code == "invalid-config"
    assert info.value.details["reason"] == reason
    assert "hourly_pri" in f"{info.value.location} {info.value.message}"


def test_good_config_prices_load() -> None:
    config = Config.from_dict({"local": {"hourly_price": 0}, "ssh": {"hourly_price": 1.5}})
    assert config.get("ssh.hourly_price") == 1.5
