"""Clusters and their event log.

Every change of a cluster's status (its creation and deletion included) is checked against
:data:`~styx.state.records.CLUSTER_TRANSITIONS` and written together with a
``status_transitions`` row in one transaction, so the log is complete; other notable things
are ``cluster_events`` rows (:func:`add_event`). :func:`list_events` reads both as one log.
Events outlive the cluster (``styx down`` keeps them).

SQLAlchemy is imported inside the functions: ``get_cluster``/``list_clusters`` on SQLite are
served by :mod:`styx.state._fast` and must not pay for importing it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any

from styx.errors import ClusterNotFound
from styx.state._sql import UNSET, Unset, given, status_filter
from styx.state.records import (
    CLUSTER_TRANSITIONS,
    JSON,
    ClusterEvent,
    ClusterRecord,
    ClusterStatus,
    EntityKind,
    StatusTransition,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from styx.state.db import Database
    from styx.state.models import ClusterEvent as EventRow


def _not_found(name: str) -> ClusterNotFound:
    return ClusterNotFound(f"Cluster {name!r} does not exist.")


# -- reads -------------------------------------------------------------------------------------


def get_cluster(db: Database, name: str) -> ClusterRecord | None:
    """The cluster called ``name``, or None."""
    fast = db.fast_reader()
    if fast is not None:
        return fast.get_cluster(name)
    return db.read(lambda s: _select_cluster(s, name))


def require_cluster(db: Database, name: str) -> ClusterRecord:
    """The cluster called ``name``; raises :class:`ClusterNotFound` if there is none."""
    record = get_cluster(db, name)
    if record is None:
        raise _not_found(name)
    return record


def list_clusters(
    db: Database, *, names: Iterable[str] | None = None, user_name: str | None = None
) -> list[ClusterRecord]:
    """Clusters ordered by name; only ``names`` (if given) and ``user_name``'s (if given)."""
    wanted = None if names is None else list(names)
    fast = db.fast_reader()
    if fast is not None:
        return fast.list_clusters(wanted, user_name)

    def txn(s: Session) -> list[ClusterRecord]:
        from sqlalchemy import select

        from styx.state.models import Cluster

        stmt = select(Cluster.__table__).order_by(Cluster.name)
        if wanted is not None:
            stmt = stmt.where(Cluster.name.in_(wanted))
        if user_name is not None:
            stmt = stmt.where(Cluster.user_name == user_name)
        return [ClusterRecord.from_mapping(m) for m in s.execute(stmt).mappings()]

    return db.read(txn)


def _select_cluster(s: Session, name: str, *, for_update: bool = False) -> ClusterRecord | None:
    from sqlalchemy import select

    from styx.state.models import Cluster

    stmt = select(Cluster.__table__).where(Cluster.name == name)
    if for_update:
        stmt = stmt.with_for_update()
    row = s.execute(stmt).mappings().first()
    return None if row is None else ClusterRecord.from_mapping(row)


# -- writes ------------------------------------------------------------------------------------


def upsert_cluster(
    db: Database,
    name: str,
    *,
    provider: str,
    handle: JSON,
    status: ClusterStatus = ClusterStatus.INIT,
    launched_resources: JSON | None = None,
    num_nodes: int = 1,
    launched_at: float | None = None,
    last_use: str | None = None,
    autostop: JSON | None = None,
    user_name: str | None = None,
    config_hash: str | None = None,
    workdir: str | None = None,
    metadata: JSON | None = None,
    message: str = "",
) -> ClusterRecord:
    """Create the cluster, or overwrite these fields of the existing one.

    An existing cluster keeps its ``cluster_id`` and ``created_at``. Creation and any change of
    status are checked against the transition table (IllegalTransition) and recorded in the
    same transaction (events ``created``/``status``).
    """
    fields: dict[str, Any] = {
        "provider": provider,
        "handle": handle,
        "status": ClusterStatus(status).value,
        "launched_resources": launched_resources,
        "num_nodes": num_nodes,
        "launched_at": launched_at,
        "last_use": last_use,
        "autostop": autostop,
        "user_name": user_name,
        "config_hash": config_hash,
        "workdir": workdir,
        "metadata": metadata or {},
    }
    return db.write(lambda s: _upsert(s, name, fields, message))


def _upsert(s: Session, name: str, fields: dict[str, Any], message: str) -> ClusterRecord:
    from styx.state import _sql
    from styx.state.models import Cluster
    from styx.state.transitions import record

    status = ClusterStatus(fields["status"])
    # Two tries: on PostgreSQL a racing creator can insert between our SELECT and INSERT.
    for _ in range(2):
        now = time.time()
        current = _select_cluster(s, name, for_update=True)
        if current is None:
            row = {**fields, "name": name, "cluster_id": uuid.uuid4().hex}
            row.update(created_at=now, status_updated_at=now)
            if _sql.insert_ignore(s, Cluster, row):
                record(s, CLUSTER_TRANSITIONS, name, None, status, message, now)
                return _must(s, name)
            continue
        changes = dict(fields)
        if current.status != status:
            changes["status_updated_at"] = now
            record(s, CLUSTER_TRANSITIONS, name, current.status, status, message, now)
        _update_columns(s, name, changes)
        return _must(s, name)
    raise RuntimeError(f"cluster {name!r} vanished while being upserted")  # pragma: no cover


def update_cluster(
    db: Database,
    name: str,
    *,
    provider: str | Unset = UNSET,
    handle: JSON | Unset = UNSET,
    launched_resources: JSON | Unset | None = UNSET,
    num_nodes: int | Unset = UNSET,
    launched_at: float | Unset | None = UNSET,
    last_use: str | Unset | None = UNSET,
    autostop: JSON | Unset | None = UNSET,
    user_name: str | Unset | None = UNSET,
    config_hash: str | Unset | None = UNSET,
    workdir: str | Unset | None = UNSET,
    metadata: JSON | Unset = UNSET,
) -> ClusterRecord:
    """Change only the given fields (not the status: see :func:`set_cluster_status`).

    Raises :class:`ClusterNotFound` if the cluster does not exist.
    """
    changes = given(
        provider=provider,
        handle=handle,
        launched_resources=launched_resources,
        num_nodes=num_nodes,
        launched_at=launched_at,
        last_use=last_use,
        autostop=autostop,
        user_name=user_name,
        config_hash=config_hash,
        workdir=workdir,
        metadata=metadata,
    )

    def txn(s: Session) -> ClusterRecord:
        if changes and not _update_columns(s, name, changes):
            raise _not_found(name)
        return _must(s, name)

    return db.write(txn)


def set_cluster_status(
    db: Database,
    name: str,
    status: ClusterStatus,
    *,
    expected: ClusterStatus | Collection[ClusterStatus] | None = None,
    message: str = "",
) -> bool:
    """Move the cluster to ``status`` and record the transition, atomically.

    With ``expected``, this is a compare-and-set: nothing changes, and False is returned, unless
    the current status is ``expected`` (or one of them). Setting the current status again
    changes nothing and returns True. Raises :class:`ClusterNotFound` if there is no cluster
    and :class:`~styx.errors.IllegalTransition` for a move the transition table refuses.
    """
    target = ClusterStatus(status)
    allowed = status_filter(expected)

    def txn(s: Session) -> bool:
        from styx.state.transitions import record

        current = _select_cluster(s, name, for_update=True)
        if current is None:
            raise _not_found(name)
        if allowed is not None and current.status.value not in allowed:
            return False
        if current.status == target:
            return True
        now = time.time()
        record(s, CLUSTER_TRANSITIONS, name, current.status, target, message, now)
        _update_columns(s, name, {"status": target.value, "status_updated_at": now})
        return True

    return db.write(txn)


def delete_cluster(db: Database, name: str, *, message: str = "") -> ClusterRecord | None:
    """Remove the cluster (its events and job history stay); returns it, or None if absent."""

    def txn(s: Session) -> ClusterRecord | None:
        from sqlalchemy import delete

        from styx.state.models import Cluster
        from styx.state.transitions import record

        current = _select_cluster(s, name, for_update=True)
        if current is None:
            return None
        record(s, CLUSTER_TRANSITIONS, name, current.status, None, message, time.time())
        s.execute(delete(Cluster).where(Cluster.name == name))
        return current

    return db.write(txn)


def _update_columns(s: Session, name: str, changes: dict[str, Any]) -> bool:
    from sqlalchemy import update

    from styx.state._sql import table_of
    from styx.state.models import Cluster

    table = table_of(Cluster)
    result = s.execute(update(table).where(table.c.name == name).values(**changes))
    return bool(getattr(result, "rowcount", 0))


def _must(s: Session, name: str) -> ClusterRecord:
    record = _select_cluster(s, name)
    if record is None:
        raise _not_found(name)
    return record


# -- events ------------------------------------------------------------------------------------


def add_event(
    db: Database,
    cluster_name: str,
    kind: str,
    message: str = "",
    *,
    from_status: ClusterStatus | None = None,
    to_status: ClusterStatus | None = None,
) -> ClusterEvent:
    """Record something notable about a cluster that is not a status change (it need not
    exist any more); ``kind`` must not be one of the transition kinds."""
    if kind in _TRANSITION_KINDS:
        raise ValueError(f"{kind!r} events are status transitions, written with the change")
    return db.write(
        lambda s: _event(s, cluster_name, kind, from_status, to_status, message, time.time())
    )


def _event(
    s: Session,
    cluster_name: str,
    kind: str,
    from_status: ClusterStatus | None,
    to_status: ClusterStatus | None,
    message: str,
    now: float,
) -> ClusterEvent:
    from styx.state.models import ClusterEvent as EventRow

    row = EventRow(
        cluster_name=cluster_name,
        time=now,
        kind=kind,
        from_status=None if from_status is None else ClusterStatus(from_status).value,
        to_status=None if to_status is None else ClusterStatus(to_status).value,
        message=message,
    )
    s.add(row)
    s.flush()
    return _event_record(row)


def _event_record(row: EventRow) -> ClusterEvent:
    return ClusterEvent(
        id=row.id,
        cluster_name=row.cluster_name,
        time=row.time,
        kind=row.kind,
        from_status=None if row.from_status is None else ClusterStatus(row.from_status),
        to_status=None if row.to_status is None else ClusterStatus(row.to_status),
        message=row.message,
    )


def list_events(
    db: Database,
    cluster_name: str | None = None,
    *,
    kinds: Collection[str] | None = None,
    since: float | None = None,
    limit: int | None = None,
) -> list[ClusterEvent]:
    """Events oldest first: of one cluster or all, of some kinds, after ``since``.

    Status transitions (from ``status_transitions``) come as kinds ``created``, ``status``
    and ``deleted``, merged by time with the other events. With ``limit``, the most recent
    ``limit`` events (still oldest first).
    """
    wanted = None if kinds is None else set(kinds)

    def txn(s: Session) -> list[ClusterEvent]:
        from sqlalchemy import select

        from styx.state.models import ClusterEvent as EventRow

        notes: list[ClusterEvent] = []
        if wanted is None or wanted - _TRANSITION_KINDS:
            stmt = select(EventRow).order_by(EventRow.time.desc(), EventRow.id.desc())
            if cluster_name is not None:
                stmt = stmt.where(EventRow.cluster_name == cluster_name)
            if wanted is not None:
                stmt = stmt.where(EventRow.kind.in_(sorted(wanted)))
            if since is not None:
                stmt = stmt.where(EventRow.time > since)
            if limit is not None:
                stmt = stmt.limit(limit)
            notes = [_event_record(r) for r in s.execute(stmt).scalars()]
            notes.reverse()
        changes: list[ClusterEvent] = []
        if wanted is None or wanted & _TRANSITION_KINDS:
            changes = [
                _transition_event(t)
                for t in _select_cluster_transitions(s, cluster_name, wanted, since, limit)
            ]
        merged = sorted([*notes, *changes], key=lambda e: e.time)  # stable: ids stay in order
        return merged[-limit:] if limit is not None else merged

    return db.read(txn)


#: The event kinds that are status transitions: creation, a change of status, deletion.
_TRANSITION_KINDS = frozenset({"created", "status", "deleted"})


def _select_cluster_transitions(
    s: Session,
    cluster_name: str | None,
    kinds: set[str] | None,
    since: float | None,
    limit: int | None,
) -> list[StatusTransition]:
    from sqlalchemy import and_, or_

    from styx.state.models import StatusTransition as Row
    from styx.state.transitions import select_transitions

    where = None
    if kinds is not None and not kinds >= _TRANSITION_KINDS:
        conditions = {
            "created": Row.from_status.is_(None),
            "deleted": Row.to_status.is_(None),
            "status": and_(Row.from_status.is_not(None), Row.to_status.is_not(None)),
        }
        where = or_(*(conditions[k] for k in sorted(kinds & _TRANSITION_KINDS)))
    return select_transitions(s, EntityKind.CLUSTER, cluster_name, since, limit, where)


def _transition_event(t: StatusTransition) -> ClusterEvent:
    kind = "created" if t.from_status is None else "deleted" if t.to_status is None else "status"
    return ClusterEvent(
        id=t.id,
        cluster_name=t.entity_id,
        time=t.time,
        kind=kind,
        from_status=None if t.from_status is None else ClusterStatus(t.from_status),
        to_status=None if t.to_status is None else ClusterStatus(t.to_status),
        message=t.reason or "",
    )
