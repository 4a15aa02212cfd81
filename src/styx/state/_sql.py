"""Small SQL helpers shared by the repository modules, the same on SQLite and PostgreSQL.

Importing this module imports no SQLAlchemy (the hot read path uses :data:`UNSET`).
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, cast

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.orm import Session


class Unset(enum.Enum):
    """Marks a keyword argument the caller did not pass (``None`` is a real value)."""

    UNSET = 0


UNSET: Final = Unset.UNSET


def given(**fields: Any) -> dict[str, Any]:
    """The keyword arguments whose value is not :data:`UNSET`."""
    return {k: v for k, v in fields.items() if v is not UNSET}


def table_of(model: Any) -> Table:
    """The Core table of a model; its columns are keyed by column name."""
    return cast("Table", model.__table__)


def _insert(session: Session, model: Any) -> Any:
    # The dialect-specific Insert (both have on_conflict_*), typed loosely on purpose.
    # The Core table, so that value keys are column names (``metadata``, not ``metadata_``).
    table = getattr(model, "__table__", model)
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    return pg_insert(table)


def insert_ignore(session: Session, model: Any, values: Mapping[str, Any]) -> bool:
    """Insert a row unless one with the same key exists; True when it was inserted.

    Atomic on both backends (``ON CONFLICT DO NOTHING``), so two racing inserts never fail.
    """
    insert = _insert(session, model)
    # RETURNING, because drivers do not all report a rowcount for INSERT (psycopg via SQLAlchemy
    # gives -1); an ignored row returns nothing.
    key = next(iter(insert.table.primary_key.columns))
    stmt = insert.values(**values).on_conflict_do_nothing().returning(key)
    return session.execute(stmt).first() is not None


def upsert(
    session: Session,
    model: Any,
    values: Mapping[str, Any],
    keys: Sequence[str],
    update: Collection[str] | None = None,
) -> None:
    """Insert a row, or update the ``update`` columns (default: all non-key) of the existing one."""
    cols = [c for c in values if c not in keys] if update is None else list(update)
    stmt = _insert(session, model).values(**values)
    if not cols:
        session.execute(stmt.on_conflict_do_nothing())
        return
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys), set_={c: stmt.excluded[c] for c in cols}
    )
    session.execute(stmt)


def status_filter(expected: Any) -> list[str] | None:
    """Normalise an ``expected`` status argument (one status, several, or None) to strings."""
    if expected is None:
        return None
    if isinstance(expected, str):
        return [str(expected)]
    return [str(s) for s in expected]
