"""Advisory cluster locks: exclusion across processes, leases, dead holders, renewal."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from styx.errors import ClusterBusy
from styx.state import (
    LockHolder,
    acquire_lock,
    cluster_lock,
    get_cluster,
    lock_holder,
    update_cluster,
    upsert_cluster,
)
from styx.state.db import Database
from styx.state.locks import host_identity

from .helpers import run_in_processes


def test_second_holder_is_refused_with_who_holds_it(db: Database) -> None:
    with cluster_lock(db, "c", purpose="styx launch") as lease:
        holder = lock_holder(db, "cluster:c")
        assert holder is not None and holder.owner == lease.owner
        assert holder.pid == os.getpid() and holder.purpose == "styx launch"
        seen: list[LockHolder] = []
        started = time.monotonic()
        with pytest.raises(ClusterBusy, match="styx launch") as info:
            acquire_lock(db, "cluster:c", timeout=0.3, on_wait=seen.append)
        assert time.monotonic() - started >= 0.3
        assert [h.owner for h in seen] == [lease.owner]
        assert info.value.code == "cluster-busy" and str(os.getpid()) in info.value.message
    assert lock_holder(db, "cluster:c") is None
    acquire_lock(db, "cluster:c").release()


def test_lock_is_released_when_the_block_raises(db: Database) -> None:
    with pytest.raises(RuntimeError), cluster_lock(db, "c"):
        raise RuntimeError("boom")
    assert lock_holder(db, "cluster:c") is None


def test_locks_are_per_key(db: Database) -> None:
    with cluster_lock(db, "a"), cluster_lock(db, "b"):
        assert lock_holder(db, "cluster:a") and lock_holder(db, "cluster:b")


def test_expired_lease_is_taken_over(db: Database) -> None:
    stale = acquire_lock(db, "k", lease_seconds=0.2)
    time.sleep(0.3)
    assert lock_holder(db, "k") is None
    fresh = acquire_lock(db, "k")
    assert not stale.renew() and stale.lost  # the old holder learns it lost the lock
    stale.release()  # does not free the new holder's lock
    holder = lock_holder(db, "k")
    assert holder is not None and holder.owner == fresh.owner
    fresh.release()


def test_dead_holder_on_this_host_is_taken_over_at_once(db: Database) -> None:
    code = (
        "import sys; from styx.state.db import Database; from styx.state.locks import "
        "acquire_lock; acquire_lock(Database(sys.argv[1]), 'k', lease_seconds=3600)"
    )
    subprocess.run([sys.executable, "-c", code, db.url], check=True)  # exits holding it
    assert lock_holder(db, "k") is None
    acquire_lock(db, "k", timeout=0).release()


def test_holder_on_another_host_waits_for_expiry(db: Database) -> None:
    lease = acquire_lock(db, "k", lease_seconds=3600)
    from styx.state.models import Lock

    db.write(
        lambda s: s.execute(
            sa.update(Lock).values(host="elsewhere/x/y", pid=999_999_999)  # a dead pid there
        )
    )
    with pytest.raises(ClusterBusy, match="on elsewhere"):
        acquire_lock(db, "k", timeout=0)
    lease.release()


def test_held_lease_is_renewed_in_the_background(db: Database) -> None:
    with cluster_lock(db, "c", lease_seconds=0.6):
        time.sleep(1.5)  # well past the lease: the keeper renewed it
        with pytest.raises(ClusterBusy):
            acquire_lock(db, "cluster:c", timeout=0)


def _bump_under_lock(url: str, rounds: int) -> int:
    db = Database(url)
    for _ in range(rounds):
        with cluster_lock(db, "shared", timeout=60):
            rec = get_cluster(db, "shared")
            assert rec is not None
            time.sleep(0.005)  # widen the read-modify-write window
            update_cluster(db, "shared", metadata={"n": rec.metadata["n"] + 1})
    return rounds


def test_lock_excludes_across_processes(db: Database) -> None:
    upsert_cluster(db, "shared", provider="local", handle={}, metadata={"n": 0})
    done = run_in_processes(_bump_under_lock, [(db.url, 10)] * 6)
    shared = get_cluster(db, "shared")
    assert shared is not None and shared.metadata["n"] == sum(done) == 60


def test_host_identity_is_stable() -> None:
    assert host_identity() == host_identity()
    assert host_identity().count("/") == 2
