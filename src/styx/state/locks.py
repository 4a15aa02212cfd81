"""Advisory locks between processes (and machines sharing a PostgreSQL database).

A lock is a row in ``locks``: a lease held by one owner until ``expires_at``. While a
:func:`cluster_lock` block runs, a daemon thread renews the lease, so a lock outlives a long
``launch`` but not a crashed process: a lease that is not renewed expires, and a holder on this
machine whose process has exited is recognised at once (same host identity, pid gone).
Taking a lease is one atomic ``INSERT ... ON CONFLICT DO NOTHING`` or a compare-and-set on the
previous owner, so it behaves the same on SQLite and PostgreSQL. Locks are not re-entrant.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from styx.errors import ClusterBusy, StyxError
from styx.state import _sql
from styx.state.db import Database
from styx.state.models import Lock
from styx.state.records import LockHolder

log = logging.getLogger(__name__)

DEFAULT_LEASE_S = 60.0


@functools.cache
def host_identity() -> str:
    """This machine and pid namespace: pids are only comparable within one identity."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()[:8]
    except OSError:
        boot = "-"
    try:
        pidns = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        pidns = "-"
    return f"{socket.gethostname()}/{boot}/{pidns}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


class Lease:
    """A held lock. :meth:`renew` extends it; :meth:`release` gives it up (idempotent)."""

    def __init__(self, db: Database, key: str, owner: str, lease_seconds: float) -> None:
        self.db = db
        self.key = key
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.lost = False  # set when a renewal found the lease taken over (it had expired)
        self.released = False

    def renew(self) -> bool:
        """Push the expiry ``lease_seconds`` ahead; False (and ``lost``) if no longer ours."""

        def txn(s: Session) -> bool:
            stmt = (
                update(Lock)
                .where(Lock.key == self.key, Lock.owner == self.owner)
                .values(expires_at=time.time() + self.lease_seconds)
            )
            return bool(getattr(s.execute(stmt), "rowcount", 0))

        ok = self.db.write(txn)
        if not ok:
            self.lost = True
        return ok

    def release(self) -> None:
        """Give the lock up, if still ours."""
        if self.released:
            return
        self.db.write(
            lambda s: s.execute(delete(Lock).where(Lock.key == self.key, Lock.owner == self.owner))
        )
        self.released = True


def acquire_lock(
    db: Database,
    key: str,
    *,
    purpose: str = "",
    timeout: float = 0.0,
    lease_seconds: float = DEFAULT_LEASE_S,
    on_wait: Callable[[LockHolder], None] | None = None,
) -> Lease:
    """Take the lock ``key``, waiting up to ``timeout`` seconds for its holder.

    ``purpose`` (e.g. ``"styx launch"``) is shown to whoever waits. ``on_wait`` is called once,
    with the holder, when the lock is not free at once. Raises :class:`ClusterBusy` on timeout.
    The caller must renew the lease within ``lease_seconds`` (:func:`hold_lock` does).
    """
    owner = uuid.uuid4().hex
    deadline = time.monotonic() + timeout
    told = False
    while True:
        holder = db.write(lambda s: _try_take(s, key, owner, purpose, lease_seconds))
        if holder is None:
            return Lease(db, key, owner, lease_seconds)
        if on_wait is not None and not told:
            on_wait(holder)
            told = True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _busy(holder)
        time.sleep(min(remaining, random.uniform(0.02, 0.2)))


def _try_take(
    s: Session, key: str, owner: str, purpose: str, lease_seconds: float
) -> LockHolder | None:
    """None when the lock is now ours, else who holds it."""
    now = time.time()
    mine = {
        "key": key,
        "owner": owner,
        "purpose": purpose,
        "pid": os.getpid(),
        "host": host_identity(),
        "acquired_at": now,
        "expires_at": now + lease_seconds,
    }
    for _ in range(3):
        if _sql.insert_ignore(s, Lock, mine):
            return None
        row = s.execute(select(Lock).where(Lock.key == key).with_for_update()).scalar_one_or_none()
        if row is None:
            continue  # released between our INSERT and SELECT; try again
        if row.expires_at > now and not _holder_gone(row):
            return _holder(row)
        stolen = s.execute(
            update(Lock).where(Lock.key == key, Lock.owner == row.owner).values(**mine)
        )
        if getattr(stolen, "rowcount", 0):
            return None
    return LockHolder(key, "", purpose, 0, "", now, now)  # hot contention: report busy, poll


def _holder_gone(row: Lock) -> bool:
    return row.host == host_identity() and not _pid_alive(row.pid)


def _holder(row: Lock) -> LockHolder:
    return LockHolder(
        key=row.key,
        owner=row.owner,
        purpose=row.purpose,
        pid=row.pid,
        host=row.host,
        acquired_at=row.acquired_at,
        expires_at=row.expires_at,
    )


def _busy(holder: LockHolder) -> ClusterBusy:
    what = (
        f"Cluster {holder.key.removeprefix('cluster:')!r}"
        if holder.key.startswith("cluster:")
        else f"Lock {holder.key!r}"
    )
    by = holder.purpose or "another Styx command"
    since = time.strftime("%H:%M:%S", time.localtime(holder.acquired_at))
    host = holder.host.split("/", 1)[0]
    return ClusterBusy(
        f"{what} is busy: {by} (pid {holder.pid} on {host}) has held it since {since}.",
        details={"key": holder.key, "pid": holder.pid, "host": host, "purpose": holder.purpose},
    )


def lock_holder(db: Database, key: str) -> LockHolder | None:
    """Who holds ``key`` now (an unexpired lease), or None."""

    def txn(s: Session) -> LockHolder | None:
        row = s.get(Lock, key)
        if row is None or row.expires_at <= time.time() or _holder_gone(row):
            return None
        return _holder(row)

    return db.read(txn)


@contextlib.contextmanager
def hold_lock(
    db: Database,
    key: str,
    *,
    purpose: str = "",
    timeout: float = 0.0,
    lease_seconds: float = DEFAULT_LEASE_S,
    on_wait: Callable[[LockHolder], None] | None = None,
) -> Iterator[Lease]:
    """Hold the lock ``key`` for the ``with`` block, renewing it in the background."""
    lease = acquire_lock(
        db, key, purpose=purpose, timeout=timeout, lease_seconds=lease_seconds, on_wait=on_wait
    )
    stop = threading.Event()
    keeper = threading.Thread(
        target=_keep, args=(lease, stop), name=f"styx-lease-{key}", daemon=True
    )
    keeper.start()
    try:
        yield lease
    finally:
        stop.set()
        keeper.join()
        try:
            lease.release()
        except StyxError as exc:  # the lease will expire on its own; don't mask the body's error
            log.warning("could not release lock %s: %s", key, exc)


def _keep(lease: Lease, stop: threading.Event) -> None:
    while not stop.wait(lease.lease_seconds / 3):
        try:
            if not lease.renew():
                log.warning("lost lock %s: its lease expired before renewal", lease.key)
                return
        except StyxError as exc:
            log.warning("could not renew lock %s: %s", lease.key, exc)


def cluster_lock(
    db: Database,
    cluster_name: str,
    *,
    purpose: str = "",
    timeout: float = 0.0,
    lease_seconds: float = DEFAULT_LEASE_S,
    on_wait: Callable[[LockHolder], None] | None = None,
) -> contextlib.AbstractContextManager[Lease]:
    """Hold the cluster's lock for a ``with`` block, so two commands never change it at once.

    Raises :class:`ClusterBusy` if another holder keeps it past ``timeout`` seconds.
    """
    return hold_lock(
        db,
        f"cluster:{cluster_name}",
        purpose=purpose,
        timeout=timeout,
        lease_seconds=lease_seconds,
        on_wait=on_wait,
    )
