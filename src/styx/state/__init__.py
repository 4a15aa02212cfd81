"""What Styx remembers: clusters, their events and jobs, managed jobs and DAG runs, locks,
and every status transition of clusters, managed jobs and DAG runs (``list_transitions``).

Callers get a :class:`Database` from :func:`get_db` (or :meth:`Database.open`) and pass it to
small repository functions that return frozen records (:mod:`styx.state.records`), never ORM
objects. Importing this package is cheap: names load on first use, SQLAlchemy only when a query
needs it, and Alembic only when the schema must be created or upgraded.

Errors: contention is retried inside; other failures raise :class:`styx.errors.StateError`;
missing things raise ``ClusterNotFound``/``JobNotFound``; a held lock raises ``ClusterBusy``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from styx.state.cluster_jobs import (
        get_cluster_job,
        list_cluster_jobs,
        record_cluster_job,
        update_cluster_job,
    )
    from styx.state.clusters import (
        add_event,
        delete_cluster,
        get_cluster,
        list_clusters,
        list_events,
        require_cluster,
        set_cluster_status,
        update_cluster,
        upsert_cluster,
    )
    from styx.state.db import Database, get_db, resolve_url
    from styx.state.locks import acquire_lock, cluster_lock, hold_lock, lock_holder
    from styx.state.managed_jobs import (
        add_dag_run,
        add_managed_job,
        get_dag_run,
        get_managed_job,
        list_dag_runs,
        list_managed_job_events,
        list_managed_jobs,
        require_managed_job,
        set_dag_run_status,
        set_managed_job_status,
        update_managed_job,
    )
    from styx.state.records import (
        ClusterEvent,
        ClusterJobRecord,
        ClusterJobStatus,
        ClusterRecord,
        ClusterStatus,
        DagRunRecord,
        DagRunStatus,
        EntityKind,
        LockHolder,
        ManagedJobEvent,
        ManagedJobRecord,
        ManagedJobStatus,
        NewManagedJob,
        StatusTransition,
    )
    from styx.state.transitions import list_transitions

_MODULES = {
    "styx.state.db": ("Database", "get_db", "resolve_url"),
    "styx.state.records": (
        "ClusterEvent",
        "ClusterJobRecord",
        "ClusterJobStatus",
        "ClusterRecord",
        "ClusterStatus",
        "DagRunRecord",
        "DagRunStatus",
        "EntityKind",
        "LockHolder",
        "ManagedJobEvent",
        "ManagedJobRecord",
        "ManagedJobStatus",
        "NewManagedJob",
        "StatusTransition",
    ),
    "styx.state.transitions": ("list_transitions",),
    "styx.state.clusters": (
        "add_event",
        "delete_cluster",
        "get_cluster",
        "list_clusters",
        "list_events",
        "require_cluster",
        "set_cluster_status",
        "update_cluster",
        "upsert_cluster",
    ),
    "styx.state.cluster_jobs": (
        "get_cluster_job",
        "list_cluster_jobs",
        "record_cluster_job",
        "update_cluster_job",
    ),
    "styx.state.managed_jobs": (
        "add_dag_run",
        "add_managed_job",
        "get_dag_run",
        "get_managed_job",
        "list_dag_runs",
        "list_managed_job_events",
        "list_managed_jobs",
        "require_managed_job",
        "set_dag_run_status",
        "set_managed_job_status",
        "update_managed_job",
    ),
    "styx.state.locks": ("acquire_lock", "cluster_lock", "hold_lock", "lock_holder"),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'styx.state' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


__all__ = [
    "ClusterEvent",
    "ClusterJobRecord",
    "ClusterJobStatus",
    "ClusterRecord",
    "ClusterStatus",
    "DagRunRecord",
    "DagRunStatus",
    "Database",
    "EntityKind",
    "LockHolder",
    "ManagedJobEvent",
    "ManagedJobRecord",
    "ManagedJobStatus",
    "NewManagedJob",
    "StatusTransition",
    "acquire_lock",
    "add_dag_run",
    "add_event",
    "add_managed_job",
    "cluster_lock",
    "delete_cluster",
    "get_cluster",
    "get_cluster_job",
    "get_dag_run",
    "get_db",
    "get_managed_job",
    "hold_lock",
    "list_cluster_jobs",
    "list_clusters",
    "list_dag_runs",
    "list_events",
    "list_managed_job_events",
    "list_managed_jobs",
    "list_transitions",
    "lock_holder",
    "record_cluster_job",
    "require_cluster",
    "require_managed_job",
    "resolve_url",
    "set_cluster_status",
    "set_dag_run_status",
    "set_managed_job_status",
    "update_cluster",
    "update_cluster_job",
    "update_managed_job",
    "upsert_cluster",
]
