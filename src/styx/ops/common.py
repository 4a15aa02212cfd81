"""Helpers every operation shares: the state database, cluster handles, names."""

from __future__ import annotations

import getpass
import secrets
from typing import TYPE_CHECKING

from styx.config import config_db_url, database, user_config
from styx.errors import ClusterNotUp

__all__ = [
    "agent_client",
    "agent_socket",
    "check_cluster_name",
    "config_db_url",
    "database",
    "default_cluster_name",
    "handle_of",
    "provider_of",
    "require_cluster",
    "require_up",
    "user_config",
    "user_name",
]

if TYPE_CHECKING:
    from styx.agent.client import AgentClient
    from styx.providers.base import ClusterHandle, Provider
    from styx.spec.task import Task
    from styx.state.db import Database
    from styx.state.records import ClusterRecord


def user_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "user"


SECRET_FLAGS = ("--secret",)
REDACTED = "<redacted>"


def redact_argv(argv: list[str]) -> list[str]:
    """The command line with the value of every ``--secret KEY=VALUE`` replaced, so that it
    can be recorded and shown (``styx status`` prints it as the cluster's last use)."""
    out: list[str] = []
    take = False
    for arg in argv:
        if take:
            key, eq, _ = arg.partition("=")
            out.append(f"{key}={REDACTED}" if eq else arg)
            take = False
            continue
        flag, eq, value = arg.partition("=")
        if flag in SECRET_FLAGS and eq:
            key, eq2, _ = value.partition("=")
            out.append(f"{flag}={key}={REDACTED}" if eq2 else arg)
        else:
            out.append(arg)
            take = arg in SECRET_FLAGS
    return out


def launch_warnings(task: Task, infra: str) -> list[str]:
    """What a launch of ``task`` on ``infra`` will not do although asked: keys of the user's
    config Styx does not know, and keys of the task's ``config:`` that ``infra`` does not
    apply. One line each."""
    from styx.providers.registry import info, unapplied_task_config
    from styx.spec.frozen import thaw

    config = user_config()
    out = config.warnings() if config is not None else []
    title = info(infra).title
    for key in unapplied_task_config(infra, thaw(task.config) if task.config else {}):
        out.append(f"Task config '{key}' has no effect on {title}; it is ignored.")
    if task.service is not None:
        out.append(
            "The task has a 'service:' section: `styx launch` runs it as a plain task. To serve "
            "it behind a load balancer with replicas, use `styx serve up FILE`."
        )
    return out


def default_cluster_name(task: Task | None = None, *, fresh: bool = False) -> str:
    """The cluster a launch without ``-c`` uses, like SkyPilot's ``sky-3f2a-alice``.

    For a task, the middle part comes from the user and the task (its name, else what it
    runs), so that launching the same task again reuses the cluster it made instead of piling
    up a new one each time; ``fresh`` (or no task) gives a random one."""
    user = "".join(c for c in user_name().lower() if c.isalnum())[:16] or "user"
    if task is None or fresh:
        return f"styx-{secrets.token_hex(2)}-{user}"
    import hashlib
    import json

    shape = {"run": task.run, "setup": task.setup, "resources": task.resources.to_dict()}
    what = task.name or json.dumps(shape, sort_keys=True, default=str)
    digest = hashlib.sha256(f"{user}\0{what}".encode()).hexdigest()[:4]
    return f"styx-{digest}-{user}"


def check_cluster_name(name: str) -> str:
    """Reject names that would not work as a folder, a tag or a hostname (the one name rule,
    :mod:`styx.spec.names`); UsageError ``invalid-cluster-name``."""
    from styx.spec.names import check_cluster_name as check

    return check(name)


def require_cluster(db: Database, name: str) -> ClusterRecord:
    """The cluster's record; ClusterNotFound when there is none."""
    from styx.state.clusters import require_cluster as require

    return require(db, name)


def handle_of(record: ClusterRecord) -> ClusterHandle:
    from styx.providers.base import ClusterHandle

    return ClusterHandle.from_json(dict(record.handle))


def provider_of(record: ClusterRecord) -> Provider:
    from styx.providers.registry import get_provider

    return get_provider(record.provider)


def agent_socket(handle: ClusterHandle) -> str:
    """The local unix socket that reaches the cluster's agent, made reachable (forwarded, for
    a remote head) by the cluster's provider."""
    from styx.providers.registry import get_provider

    return get_provider(handle.provider).agent_socket(handle)


def agent_client(handle: ClusterHandle, timeout: float | None = 30.0) -> AgentClient:
    """A client of the cluster's agent (use it as a context manager)."""
    from styx.cluster import runtime

    return runtime.client(agent_socket(handle), timeout=timeout)


def require_up(db: Database, name: str) -> tuple[ClusterRecord, ClusterHandle]:
    """The record and handle of an UP cluster, or a clear error."""
    record = require_cluster(db, name)
    if record.status.value != "UP":
        raise ClusterNotUp(f"Cluster '{name}' is {record.status.value}, not UP.")
    return record, handle_of(record)
