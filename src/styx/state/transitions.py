"""The one log of status transitions: clusters, managed jobs and DAG runs.

The repository function that changes an entity's status (:func:`~styx.state.clusters.
set_cluster_status`, :func:`~styx.state.managed_jobs.set_managed_job_status`, ...) first checks
the move against the entity's :class:`~styx.lifecycle.TransitionTable` (an illegal one
raises :class:`~styx.errors.IllegalTransition` and writes nothing), then calls :func:`record`
in the same transaction: one INSERT next to the UPDATE, so the log is complete and costs one
statement per change.

SQLAlchemy is imported inside the functions, as in :mod:`styx.state.clusters`.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, TypeVar

from styx.lifecycle import TransitionTable
from styx.state.records import EntityKind, StatusTransition

if TYPE_CHECKING:
    from sqlalchemy.orm import Session
    from sqlalchemy.sql.elements import ColumnElement

    from styx.state.db import Database
    from styx.state.models import StatusTransition as Row

E = TypeVar("E", bound=enum.StrEnum)


def record(
    s: Session,
    table: TransitionTable[E],
    entity_id: object,
    old: E | None,
    new: E | None,
    reason: str | None,
    now: float,
) -> None:
    """Check ``old -> new`` against ``table`` and write it; raises IllegalTransition."""
    from sqlalchemy import insert

    from styx.state._sql import table_of
    from styx.state.models import StatusTransition as Row

    table.check(entity_id, old, new)
    s.execute(
        insert(table_of(Row)).values(
            entity_kind=str(table.kind),
            entity_id=str(entity_id),
            time=now,
            from_status=None if old is None else old.value,
            to_status=None if new is None else new.value,
            reason=reason,
        )
    )


def list_transitions(
    db: Database,
    kind: EntityKind,
    entity_id: object | None = None,
    *,
    since: float | None = None,
    limit: int | None = None,
    where: ColumnElement[bool] | None = None,
) -> list[StatusTransition]:
    """Transitions of ``kind`` oldest first: of one entity or all, after ``since``.

    With ``limit``, the most recent ``limit`` ones (still oldest first). ``where`` narrows
    further (a condition on the ``status_transitions`` model's columns).
    """
    return db.read(lambda s: select_transitions(s, kind, entity_id, since, limit, where))


def select_transitions(
    s: Session,
    kind: EntityKind,
    entity_id: object | None,
    since: float | None,
    limit: int | None,
    where: ColumnElement[bool] | None = None,
) -> list[StatusTransition]:
    """:func:`list_transitions` inside a transaction."""
    from sqlalchemy import select

    from styx.state.models import StatusTransition as Row

    stmt = select(Row).where(Row.entity_kind == EntityKind(kind).value)
    if entity_id is not None:
        stmt = stmt.where(Row.entity_id == str(entity_id))
    if since is not None:
        stmt = stmt.where(Row.time > since)
    if where is not None:
        stmt = stmt.where(where)
    stmt = stmt.order_by(Row.time.desc(), Row.id.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    rows = [_record(r) for r in s.execute(stmt).scalars()]
    rows.reverse()
    return rows


def _record(r: Row) -> StatusTransition:
    return StatusTransition(
        id=r.id,
        entity_kind=EntityKind(r.entity_kind),
        entity_id=r.entity_id,
        time=r.time,
        from_status=r.from_status,
        to_status=r.to_status,
        reason=r.reason,
    )
