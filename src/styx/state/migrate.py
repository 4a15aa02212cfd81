"""Creating and upgrading the schema with Alembic, run programmatically (no alembic.ini).

Only imported when the ``meta`` table's ``schema_revision`` is absent or older than
:data:`styx.state.db.SCHEMA_REVISION`, so everyday commands never import Alembic. Concurrent
processes may all find an old revision at once: the upgrade runs inside one write transaction
that first takes the database's write lock (SQLite ``BEGIN IMMEDIATE``) or a transaction-level
advisory lock (PostgreSQL), then checks the revision again, so exactly one of them migrates.
Both backends have transactional DDL, so a failed upgrade leaves the schema as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.orm import Session

from styx.state import _sql
from styx.state.db import SCHEMA_REVISION, check_not_newer, read_revision_on
from styx.state.models import Meta

if TYPE_CHECKING:
    from alembic.config import Config

    from styx.state.db import Database

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Arbitrary constant key for pg_advisory_xact_lock, shared by every Styx process.
_PG_MIGRATION_LOCK = 0x57F7_0001


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    """The newest revision among the packaged migration files."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return str(head)


def upgrade(db: Database) -> str:
    """Bring ``db`` to :data:`SCHEMA_REVISION`; returns the revision it had before (or '')."""
    return db.run(lambda session: _upgrade(session, db.where), write=True)


def _upgrade(session: Session, where: str) -> str:
    from alembic import command

    conn = session.connection()
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
    before = read_revision_on(conn)
    if before == SCHEMA_REVISION:
        return before  # another process migrated while we waited for the lock
    check_not_newer(before, where)
    cfg = alembic_config()
    # env.py runs the migrations on this connection, inside this transaction.
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, SCHEMA_REVISION)
    _sql.upsert(session, Meta, {"key": "schema_revision", "value": SCHEMA_REVISION}, ["key"])
    return before or ""
