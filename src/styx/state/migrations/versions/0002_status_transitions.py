"""One log of status transitions for clusters, managed jobs and DAG runs.

``status_transitions`` replaces ``managed_job_events`` (dropped) and the status-changing rows
of ``cluster_events`` (kinds ``created``, ``status`` and ``deleted``, moved), whose rows are
copied over in their order; ``cluster_events`` keeps the other notes about clusters.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_CLUSTER_KINDS = "('created', 'status', 'deleted')"


def upgrade() -> None:
    """Create ``status_transitions`` and move the old event rows into it."""
    op.create_table(
        "status_transitions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("entity_kind", sa.String(16), nullable=False),
        sa.Column("entity_id", sa.String(255), nullable=False),
        sa.Column("time", sa.Double(), nullable=False),
        sa.Column("from_status", sa.String(24), nullable=True),
        sa.Column("to_status", sa.String(24), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_status_transitions"),
    )
    op.create_index(
        "ix_status_transitions_entity_kind_entity_id_time",
        "status_transitions",
        ["entity_kind", "entity_id", "time"],
    )
    op.execute(
        "INSERT INTO status_transitions "
        "(entity_kind, entity_id, time, from_status, to_status, reason) "
        "SELECT 'managed_job', CAST(job_id AS VARCHAR(255)), time, from_status, to_status, "
        "reason FROM managed_job_events ORDER BY time, id"
    )
    op.execute(
        "INSERT INTO status_transitions "
        "(entity_kind, entity_id, time, from_status, to_status, reason) "
        "SELECT 'cluster', cluster_name, time, from_status, to_status, message "
        f"FROM cluster_events WHERE kind IN {_CLUSTER_KINDS} ORDER BY time, id"
    )
    op.execute(f"DELETE FROM cluster_events WHERE kind IN {_CLUSTER_KINDS}")
    op.drop_index("ix_managed_job_events_job_id_time", table_name="managed_job_events")
    op.drop_table("managed_job_events")


def downgrade() -> None:
    """Put the rows back where 0001 kept them (only for development)."""
    op.create_table(
        "managed_job_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("time", sa.Double(), nullable=False),
        sa.Column("from_status", sa.String(24), nullable=True),
        sa.Column("to_status", sa.String(24), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["managed_jobs.id"],
            name="fk_managed_job_events_job_id_managed_jobs",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_managed_job_events"),
    )
    op.create_index("ix_managed_job_events_job_id_time", "managed_job_events", ["job_id", "time"])
    op.execute(
        "INSERT INTO managed_job_events (job_id, time, from_status, to_status, reason) "
        "SELECT CAST(entity_id AS INTEGER), time, from_status, to_status, reason "
        "FROM status_transitions WHERE entity_kind = 'managed_job' AND to_status IS NOT NULL "
        "ORDER BY time, id"
    )
    op.execute(
        "INSERT INTO cluster_events (cluster_name, time, kind, from_status, to_status, message) "
        "SELECT entity_id, time, CASE WHEN from_status IS NULL THEN 'created' "
        "WHEN to_status IS NULL THEN 'deleted' ELSE 'status' END, from_status, to_status, "
        "COALESCE(reason, '') FROM status_transitions WHERE entity_kind = 'cluster' "
        "ORDER BY time, id"
    )
    op.drop_index(
        "ix_status_transitions_entity_kind_entity_id_time", table_name="status_transitions"
    )
    op.drop_table("status_transitions")
