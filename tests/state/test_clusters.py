"""Clusters: upsert, partial updates, compare-and-set status, deletion, the event log."""

from __future__ import annotations

import dataclasses
import sys
import time

import pytest

from styx.errors import ClusterNotFound
from styx.state import (
    ClusterStatus,
    add_event,
    delete_cluster,
    get_cluster,
    list_clusters,
    list_events,
    require_cluster,
    set_cluster_status,
    update_cluster,
    upsert_cluster,
)
from styx.state.db import Database

from .helpers import run_in_processes

HANDLE = {
    "nodes": [
        {"id": "i-0abc", "internal_ip": "198.18.5.1", "external_ip": None, "tags": ["head"]},
        {"id": "i-0def", "internal_ip": "198.18.5.2", "external_ip": "198.18.9.6", "tags": []},
    ],
    "ssh": {"user": "ubuntu", "key_path": "~/.styx/keys/k", "port": 22},
    "agent_socket": "/tmp/styx-agent.sock",
    "unicode": "ünïcødé ✓",
    "float": 0.1 + 0.2,
    "big": 2**53,
    "flags": [True, False, None],
}


def test_upsert_creates_and_records_the_event(db: Database) -> None:
    before = time.time()
    rec = upsert_cluster(
        db,
        "c1",
        provider="aws",
        handle=HANDLE,
        launched_resources={"cloud": "aws", "instance_type": "p4d.24xlarge", "accelerators": {}},
        num_nodes=2,
        autostop={"idle_minutes": 10, "down": True},
        user_name="alice",
        config_hash="abc",
        workdir="/home/alice/proj",
        metadata={"region": "us-east-1"},
        last_use="styx launch -c c1 task.yaml",
    )
    assert rec.name == "c1" and rec.status is ClusterStatus.INIT
    assert len(rec.cluster_id) == 32 and int(rec.cluster_id, 16) >= 0
    assert before <= rec.created_at == rec.status_updated_at <= time.time()
    assert get_cluster(db, "c1") == rec
    [event] = list_events(db, "c1")
    assert (event.kind, event.from_status, event.to_status) == ("created", None, ClusterStatus.INIT)


def test_json_round_trips_exactly(db: Database) -> None:
    upsert_cluster(db, "c", provider="aws", handle=HANDLE, metadata={"nested": {"a": [1, {}]}})
    rec = require_cluster(db, "c")
    assert rec.handle == HANDLE
    assert rec.metadata == {"nested": {"a": [1, {}]}}
    assert rec.launched_resources is None and rec.autostop is None
    [listed] = list_clusters(db)
    assert listed == rec


def test_upsert_again_keeps_identity_and_logs_status_change(db: Database) -> None:
    first = upsert_cluster(db, "c", provider="aws", handle={"v": 1})
    second = upsert_cluster(
        db, "c", provider="aws", handle={"v": 2}, status=ClusterStatus.UP, launched_at=123.0
    )
    assert second.cluster_id == first.cluster_id and second.created_at == first.created_at
    assert second.handle == {"v": 2} and second.status is ClusterStatus.UP
    assert second.launched_at == 123.0
    assert second.status_updated_at >= first.status_updated_at
    kinds = [(e.kind, e.to_status) for e in list_events(db, "c")]
    assert kinds == [("created", ClusterStatus.INIT), ("status", ClusterStatus.UP)]
    # Same status again: no new event.
    upsert_cluster(db, "c", provider="aws", handle={"v": 3}, status=ClusterStatus.UP)
    assert len(list_events(db, "c")) == 2


def test_update_changes_only_given_fields(db: Database) -> None:
    upsert_cluster(db, "c", provider="aws", handle={"v": 1}, user_name="alice", workdir="/w")
    rec = update_cluster(db, "c", last_use="styx exec c x", autostop=None, workdir=None)
    assert rec.last_use == "styx exec c x" and rec.workdir is None
    assert rec.user_name == "alice" and rec.handle == {"v": 1}
    assert update_cluster(db, "c") == rec  # no fields: a read
    with pytest.raises(ClusterNotFound):
        update_cluster(db, "nope", last_use="x")


def test_set_status_is_compare_and_set(db: Database) -> None:
    upsert_cluster(db, "c", provider="local", handle={})
    assert set_cluster_status(db, "c", ClusterStatus.UP, expected=ClusterStatus.INIT)
    assert not set_cluster_status(db, "c", ClusterStatus.STOPPED, expected=ClusterStatus.INIT)
    assert require_cluster(db, "c").status is ClusterStatus.UP
    assert set_cluster_status(
        db, "c", ClusterStatus.STOPPED, expected=[ClusterStatus.UP, ClusterStatus.DEGRADED]
    )
    assert set_cluster_status(db, "c", ClusterStatus.STOPPED)  # already: True, no event
    assert set_cluster_status(db, "c", ClusterStatus.UP, message="styx start")
    events = [(e.from_status, e.to_status, e.message) for e in list_events(db, "c")][1:]
    assert events == [
        (ClusterStatus.INIT, ClusterStatus.UP, ""),
        (ClusterStatus.UP, ClusterStatus.STOPPED, ""),
        (ClusterStatus.STOPPED, ClusterStatus.UP, "styx start"),
    ]
    with pytest.raises(ClusterNotFound):
        set_cluster_status(db, "nope", ClusterStatus.UP)


def test_status_accepts_plain_strings(db: Database) -> None:
    upsert_cluster(db, "c", provider="local", handle={}, status="UP")  # type: ignore[arg-type]
    assert set_cluster_status(db, "c", "STOPPED", expected="UP")  # type: ignore[arg-type]
    assert require_cluster(db, "c").status is ClusterStatus.STOPPED


def _claim(url: str) -> bool:
    return set_cluster_status(
        Database(url), "c", ClusterStatus.UP, expected=ClusterStatus.INIT, message="claim"
    )


def test_only_one_racing_compare_and_set_wins(db: Database) -> None:
    upsert_cluster(db, "c", provider="local", handle={})
    results = run_in_processes(_claim, [(db.url,)] * 8)
    assert sorted(results) == [False] * 7 + [True]
    assert [e.kind for e in list_events(db, "c")] == ["created", "status"]


def test_delete_returns_the_cluster_and_keeps_its_events(db: Database) -> None:
    rec = upsert_cluster(db, "c", provider="local", handle={}, status=ClusterStatus.UP)
    assert delete_cluster(db, "c", message="styx down") == rec
    assert get_cluster(db, "c") is None
    assert delete_cluster(db, "c") is None
    last = list_events(db, "c")[-1]
    assert (last.kind, last.from_status, last.to_status, last.message) == (
        "deleted",
        ClusterStatus.UP,
        None,
        "styx down",
    )
    again = upsert_cluster(db, "c", provider="local", handle={})
    assert again.cluster_id != rec.cluster_id  # a new incarnation
    with pytest.raises(ClusterNotFound, match="'gone'"):
        require_cluster(db, "gone")


def test_list_filters_and_order(db: Database) -> None:
    for name, user in [("b", "bob"), ("a", "alice"), ("c", "alice")]:
        upsert_cluster(db, name, provider="local", handle={}, user_name=user)
    assert [c.name for c in list_clusters(db)] == ["a", "b", "c"]
    assert [c.name for c in list_clusters(db, user_name="alice")] == ["a", "c"]
    assert [c.name for c in list_clusters(db, names=["c", "b", "zz"])] == ["b", "c"]
    assert list_clusters(db, names=[]) == []


def test_events_filters(db: Database) -> None:
    upsert_cluster(db, "c", provider="local", handle={})
    upsert_cluster(db, "d", provider="local", handle={})
    mid = time.time()
    e = add_event(db, "c", "autostop", "idle for 10 min")
    assert e.kind == "autostop" and e.message == "idle for 10 min" and e.id > 0
    set_cluster_status(db, "c", ClusterStatus.UP)
    add_event(db, "gone", "note", to_status=ClusterStatus.STOPPED)  # no cluster needed
    assert [x.kind for x in list_events(db, "c")] == ["created", "autostop", "status"]
    assert [x.kind for x in list_events(db, "c", since=mid)] == ["autostop", "status"]
    assert [x.kind for x in list_events(db, "c", limit=2)] == ["autostop", "status"]
    assert [x.kind for x in list_events(db, "c", kinds=["status"])] == ["status"]
    assert len(list_events(db)) == 5
    assert list_events(db, "gone")[0].to_status is ClusterStatus.STOPPED


def test_records_are_frozen_snapshots(db: Database) -> None:
    rec = upsert_cluster(db, "c", provider="local", handle={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.status = ClusterStatus.UP  # type: ignore[misc]
    set_cluster_status(db, "c", ClusterStatus.UP)
    assert rec.status is ClusterStatus.INIT


def test_last_use_is_written_without_sqlalchemy_where_sqlite_allows(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `exec` records LAST USE through the sqlite3 fast path (no SQLAlchemy import on its way to
    # the job's first output); PostgreSQL, or a database the fast path cannot read, goes the
    # ordinary way. Either way the record says the same.
    from styx.ops.stages import record_use

    monkeypatch.setattr(sys, "argv", ["/usr/bin/styx", "exec", "c1", "echo hi"])  # as a CLI's
    upsert_cluster(db, "c1", provider="local", handle=HANDLE, status=ClusterStatus.UP)
    record_use(db, "c1")
    used = require_cluster(db, "c1").last_use
    assert used and used.startswith("styx ")
    fast = db.fast_reader()
    if fast is not None:
        assert fast.set_last_use("c1", "styx exec c1 true")
        assert not fast.set_last_use("missing", "x")
        assert require_cluster(db, "c1").last_use == "styx exec c1 true"
    record_use(db, "missing")  # best effort: no such cluster is not an error
