"""What each cluster incarnation costs: ``cluster_usage``, one row per ``cluster_id``.

Written when the cluster is provisioned (its price per hour for all nodes, as the optimizer
priced it then, and its resources) and kept after ``styx down``, so that a later catalog change
or a torn-down cluster does not change what ``styx cost-report`` says. When it was up comes from
``status_transitions``.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_JSON = sa.JSON(none_as_null=True)


def upgrade() -> None:
    """Create the table (clusters launched before it have no recorded price)."""
    op.create_table(
        "cluster_usage",
        sa.Column("cluster_id", sa.String(32), nullable=False),
        sa.Column("cluster_name", sa.String(255), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("infra", sa.Text(), nullable=False),
        sa.Column("resources", _JSON, nullable=True),
        sa.Column("num_nodes", sa.Integer(), nullable=False),
        sa.Column("hourly_price", sa.Double(), nullable=True),
        sa.Column("launched_at", sa.Double(), nullable=False),
        sa.Column("managed_job_id", sa.Integer(), nullable=True),
        sa.Column("user_name", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("cluster_id", name="pk_cluster_usage"),
    )
    op.create_index("ix_cluster_usage_managed_job_id", "cluster_usage", ["managed_job_id"])
    op.create_index("ix_cluster_usage_launched_at", "cluster_usage", ["launched_at"])


def downgrade() -> None:
    """Drop the table (only for development)."""
    op.drop_index("ix_cluster_usage_launched_at", table_name="cluster_usage")
    op.drop_index("ix_cluster_usage_managed_job_id", table_name="cluster_usage")
    op.drop_table("cluster_usage")
