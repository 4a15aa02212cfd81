"""Storage objects: ``storage``, one row per named bucket Styx made or mounts by name.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_JSON = sa.JSON(none_as_null=True)


def upgrade() -> None:
    """Create the table (no storage existed before it)."""
    op.create_table(
        "storage",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("store", sa.String(16), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("region", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("persistent", sa.Integer(), nullable=False),
        sa.Column("sources", _JSON, nullable=True),
        sa.Column("clusters", _JSON, nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("last_use", sa.Text(), nullable=True),
        sa.Column("user_name", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_storage"),
    )


def downgrade() -> None:
    """Drop the table (only for development)."""
    op.drop_table("storage")
