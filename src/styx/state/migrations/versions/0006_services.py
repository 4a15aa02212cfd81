"""Services: ``services`` and ``service_replicas``, for ``styx serve``.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_JSON = sa.JSON(none_as_null=True)


def upgrade() -> None:
    """Create the tables (no service existed before them)."""
    op.create_table(
        "services",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("specs", _JSON, nullable=False),
        sa.Column("update_mode", sa.String(16), nullable=False),
        sa.Column("lb_host", sa.String(64), nullable=False),
        sa.Column("lb_port", sa.Integer(), nullable=False),
        sa.Column("tls", sa.Integer(), nullable=False),
        sa.Column("next_replica_id", sa.Integer(), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("user_name", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_services"),
    )
    op.create_table(
        "service_replicas",
        sa.Column("service", sa.String(255), nullable=False),
        sa.Column("replica_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("cluster_name", sa.String(255), nullable=False),
        sa.Column("use_spot", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.String(255), nullable=True),
        sa.Column("infra", sa.String(255), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("launched_at", sa.Double(), nullable=False),
        sa.Column("status_since", sa.Double(), nullable=False),
        sa.Column("ready_at", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["service"],
            ["services.name"],
            ondelete="CASCADE",
            name="fk_service_replicas_service_services",
        ),
        sa.PrimaryKeyConstraint("service", "replica_id", name="pk_service_replicas"),
    )


def downgrade() -> None:
    """Drop the tables (only for development)."""
    op.drop_table("service_replicas")
    op.drop_table("services")
