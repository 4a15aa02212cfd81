"""Alembic environment for the Styx state database.

Run only through :func:`styx.state.migrate.upgrade`, which passes an open connection inside a
transaction in ``config.attributes["connection"]``; offline (SQL script) mode is not supported.
"""

from __future__ import annotations

from alembic import context

from styx.state.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Styx migrations run through styx.state.migrate.upgrade(), not the CLI.")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things; batch mode copies the table instead.
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
