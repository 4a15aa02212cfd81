"""``refresh`` records what it found with a compare-and-set, so a cluster that another command
moved meanwhile (autostop stopped it) is left as that command left it (no machines here)."""

from __future__ import annotations

import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from styx.ops import cluster_ops, common
from styx.state import db as dbmod
from styx.state.clusters import list_events, require_cluster, set_cluster_status, upsert_cluster
from styx.state.db import Database
from styx.state.records import ClusterStatus


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.delenv("STYX_DB_URL", raising=False)
    monkeypatch.setenv("STYX_HOME", str(tmp_path / "home"))
    dbmod.clear_cache()
    database = Database.open()
    yield database
    database.close()
    dbmod.clear_cache()


def test_a_refresh_racing_a_stop_leaves_the_cluster_stopped(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    upsert_cluster(db, "c", provider="local", handle={}, status=ClusterStatus.UP)
    seen = require_cluster(db, "c")  # what `styx status -r` read: UP
    set_cluster_status(db, "c", ClusterStatus.STOPPED, message="autostop: stopped when idle")
    lost = types.SimpleNamespace(
        unreachable_nodes=lambda handle: ["head"], gone_nodes=lambda handle: []
    )
    monkeypatch.setattr(common, "provider_of", lambda record: lost)
    monkeypatch.setattr(common, "handle_of", lambda record: types.SimpleNamespace(nodes=["head"]))
    after = cluster_ops.refresh(db, seen)  # would be DEGRADED, but STOPPED cannot degrade
    assert after is not None
    assert after.status is ClusterStatus.STOPPED
    assert list_events(db, "c")[-1].message == "autostop: stopped when idle"


def test_refresh_forgets_a_cluster_whose_nodes_are_all_gone_and_keeps_it_in_an_outage(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All nodes gone by the infra's word (autostop's down from the head): the record goes. An
    infra API that does not answer changes nothing."""
    from styx.errors import RemoteError
    from styx.state.clusters import get_cluster

    upsert_cluster(db, "g", provider="local", handle={}, status=ClusterStatus.UP)
    terminated: list[object] = []
    gone = types.SimpleNamespace(
        gone_nodes=lambda handle: ["head"], terminate=lambda handle: terminated.append(handle)
    )
    monkeypatch.setattr(common, "provider_of", lambda record: gone)
    monkeypatch.setattr(common, "handle_of", lambda record: types.SimpleNamespace(nodes=["head"]))
    assert cluster_ops.refresh(db, require_cluster(db, "g")) is None
    assert get_cluster(db, "g") is None and terminated

    def outage(handle: object) -> list[str]:
        raise RemoteError("The API server did not answer.")

    upsert_cluster(db, "o", provider="local", handle={}, status=ClusterStatus.UP)
    monkeypatch.setattr(
        common, "provider_of", lambda record: types.SimpleNamespace(gone_nodes=outage)
    )
    after = cluster_ops.refresh(db, require_cluster(db, "o"))
    assert after is not None and after.status is ClusterStatus.UP
