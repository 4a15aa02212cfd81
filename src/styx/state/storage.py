"""Storage objects: the named buckets Styx made or mounts, for ``styx storage ls/delete``.

A row is written when a launch makes (or first mounts) a named bucket, and updated as clusters
start and stop using it. ``created`` says Styx made the bucket: only such buckets are ever
deleted by Styx (``persistent: false`` at ``down``, or ``styx storage delete``); for the rest,
delete forgets the record and leaves the bucket alone. No credential is ever stored here.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from styx.state.db import Database

#: A storage's status: being uploaded into, usable, or its last upload failed.
UPLOADING, READY, UPLOAD_FAILED = "UPLOADING", "READY", "UPLOAD_FAILED"


@dataclasses.dataclass(frozen=True, slots=True)
class StorageRecord:
    """One storage object as recorded."""

    name: str
    store: str
    url: str
    region: str | None
    status: str
    created: bool
    persistent: bool
    sources: tuple[str, ...]
    clusters: tuple[str, ...]
    created_at: float
    updated_at: float
    last_use: str | None = None
    user_name: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["sources"], out["clusters"] = list(self.sources), list(self.clusters)
        return out


def _record(row: Any) -> StorageRecord:
    return StorageRecord(
        name=row.name, store=row.store, url=row.url, region=row.region, status=row.status,
        created=bool(row.created), persistent=bool(row.persistent),
        sources=tuple(row.sources or ()), clusters=tuple(row.clusters or ()),
        created_at=row.created_at, updated_at=row.updated_at, last_use=row.last_use,
        user_name=row.user_name,
    )  # fmt: skip


def list_storage(db: Database) -> list[StorageRecord]:
    """Every storage object, by name."""

    def txn(s: Session) -> list[StorageRecord]:
        from sqlalchemy import select

        from styx.state.models import Storage

        return [_record(r) for r in s.execute(select(Storage).order_by(Storage.name)).scalars()]

    return db.read(txn)


def get_storage(db: Database, name: str) -> StorageRecord | None:
    """The storage object called ``name``, or None."""

    def txn(s: Session) -> StorageRecord | None:
        from styx.state.models import Storage

        row = s.get(Storage, name)
        return None if row is None else _record(row)

    return db.read(txn)


def save_storage(
    db: Database,
    name: str,
    *,
    store: str,
    url: str,
    region: str | None,
    status: str,
    created: bool,
    persistent: bool,
    sources: tuple[str, ...],
    cluster: str | None,
    last_use: str | None = None,
    user_name: str | None = None,
) -> None:
    """Create or update a storage object; ``cluster`` (if given) is added to its users. An
    existing row keeps ``created`` if it was set (Styx made the bucket once, it stays Styx's)."""

    def txn(s: Session) -> None:
        from styx.state.models import Storage

        now = time.time()
        row = s.get(Storage, name)
        if row is None:
            row = Storage(name=name, created_at=now, clusters=[], created=int(created))
            s.add(row)
        row.store, row.url, row.region, row.status = store, url, region, status
        row.created = int(bool(row.created) or created)
        row.persistent, row.sources = int(persistent), list(sources)
        if cluster is not None and cluster not in (row.clusters or []):
            row.clusters = [*(row.clusters or []), cluster]
        row.updated_at, row.last_use = now, last_use or row.last_use
        row.user_name = user_name or row.user_name

    db.write(txn)


def set_status(db: Database, name: str, status: str) -> None:
    def txn(s: Session) -> None:
        from styx.state.models import Storage

        row = s.get(Storage, name)
        if row is not None:
            row.status, row.updated_at = status, time.time()

    db.write(txn)


def detach_cluster(db: Database, cluster: str) -> list[StorageRecord]:
    """Remove ``cluster`` from every storage's users; returns the storage it used (as now)."""

    def txn(s: Session) -> list[StorageRecord]:
        from sqlalchemy import select

        from styx.state.models import Storage

        out = []
        for row in s.execute(select(Storage)).scalars():
            users = list(row.clusters or [])
            if cluster in users:
                row.clusters = [c for c in users if c != cluster]
                row.updated_at = time.time()
                out.append(_record(row))
        return out

    return db.write(txn)


def delete_storage(db: Database, name: str) -> None:
    def txn(s: Session) -> None:
        from styx.state.models import Storage

        row = s.get(Storage, name)
        if row is not None:
            s.delete(row)

    db.write(txn)
