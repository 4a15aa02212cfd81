"""The initial schema: clusters, their events and jobs, managed jobs, DAG runs, locks, meta.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_JSON = sa.JSON(none_as_null=True)


def upgrade() -> None:
    """Create every table and index."""
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_meta"),
    )
    op.create_table(
        "clusters",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("cluster_id", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("handle", _JSON, nullable=False),
        sa.Column("launched_resources", _JSON, nullable=True),
        sa.Column("num_nodes", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("launched_at", sa.Double(), nullable=True),
        sa.Column("status_updated_at", sa.Double(), nullable=False),
        sa.Column("last_use", sa.Text(), nullable=True),
        sa.Column("autostop", _JSON, nullable=True),
        sa.Column("user_name", sa.String(255), nullable=True),
        sa.Column("config_hash", sa.String(128), nullable=True),
        sa.Column("workdir", sa.Text(), nullable=True),
        sa.Column("metadata", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_clusters"),
    )
    op.create_table(
        "cluster_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("cluster_name", sa.String(255), nullable=False),
        sa.Column("time", sa.Double(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cluster_events"),
    )
    op.create_index(
        "ix_cluster_events_cluster_name_time", "cluster_events", ["cluster_name", "time"]
    )
    op.create_table(
        "cluster_jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("cluster_name", sa.String(255), nullable=False),
        sa.Column("cluster_id", sa.String(32), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("submitted_at", sa.Double(), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=True),
        sa.Column("ended_at", sa.Double(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("resources", _JSON, nullable=True),
        sa.Column("user_name", sa.String(255), nullable=True),
        sa.Column("log_path", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_cluster_jobs"),
    )
    op.create_index(
        "uq_cluster_jobs_cluster_id_job_id", "cluster_jobs", ["cluster_id", "job_id"], unique=True
    )
    op.create_index(
        "ix_cluster_jobs_cluster_name_submitted_at",
        "cluster_jobs",
        ["cluster_name", "submitted_at"],
    )
    op.create_table(
        "dag_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("spec", _JSON, nullable=False),
        sa.Column("on_failure", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("ended_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_dag_runs"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_dag_runs_status", "dag_runs", ["status"])
    op.create_table(
        "managed_jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("dag_run_id", sa.Integer(), nullable=True),
        sa.Column("task_index", sa.Integer(), nullable=False),
        sa.Column("task_name", sa.String(255), nullable=True),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("spec", _JSON, nullable=False),
        sa.Column("resources", _JSON, nullable=True),
        sa.Column("cluster_name", sa.String(255), nullable=True),
        sa.Column("recovery_count", sa.Integer(), nullable=False),
        sa.Column("restarts_on_errors", sa.Integer(), nullable=False),
        sa.Column("submitted_at", sa.Double(), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=True),
        sa.Column("ended_at", sa.Double(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("user_name", sa.String(255), nullable=True),
        sa.Column("controller_pid", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["dag_run_id"],
            ["dag_runs.id"],
            name="fk_managed_jobs_dag_run_id_dag_runs",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_managed_jobs"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_managed_jobs_status_priority", "managed_jobs", ["status", "priority"])
    op.create_index("ix_managed_jobs_dag_run_id", "managed_jobs", ["dag_run_id"])
    op.create_index("ix_managed_jobs_cluster_name", "managed_jobs", ["cluster_name"])
    op.create_index("ix_managed_jobs_user_name", "managed_jobs", ["user_name"])
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
    op.create_table(
        "locks",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("acquired_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_locks"),
    )


def downgrade() -> None:
    """Drop everything (only for development; Styx never downgrades on its own)."""
    for table in (
        "locks",
        "managed_job_events",
        "managed_jobs",
        "dag_runs",
        "cluster_jobs",
        "cluster_events",
        "clusters",
        "meta",
    ):
        op.drop_table(table)
