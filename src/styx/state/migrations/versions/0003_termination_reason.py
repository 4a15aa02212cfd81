"""Managed jobs remember why they ended: ``managed_jobs.termination_reason``.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable column (jobs that ended before it have none)."""
    with op.batch_alter_table("managed_jobs") as batch:
        batch.add_column(sa.Column("termination_reason", sa.String(32), nullable=True))


def downgrade() -> None:
    """Drop the column (only for development)."""
    with op.batch_alter_table("managed_jobs") as batch:
        batch.drop_column("termination_reason")
