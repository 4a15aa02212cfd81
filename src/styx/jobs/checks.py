"""What ``styx jobs launch`` checks before it queues anything.

A managed job is launched later, by the controller, where nobody reads the error. So each
task goes through the checks ``styx launch`` runs before provisioning (fields Styx cannot
launch yet, envs and secrets declared null and not given, local paths, file-mount
destinations), and through the optimizer once, so that a task that can never run is refused
with its code at submit time instead of being queued to fail.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from styx.errors import ResourcesUnavailable, StyxError

if TYPE_CHECKING:
    from styx.spec.dag import Dag
    from styx.spec.task import Task

#: The code of a task that no enabled infra can run (the optimizer's reason is in the message).
INFEASIBLE = "managed-job-infeasible"
#: The name checks use for the cluster a job will get (its id is not known before queueing).
_PROBE_CLUSTER = "styx-mj-0"


def check_submittable(dag: Dag) -> None:
    """Raise the first reason a task of ``dag`` could never run; return when all could.

    SpecError (``missing-value``, ``workdir-not-found``, ``mount-source-not-found``,
    ``mount-destination-refused`` ...), NotSupportedError, or ResourcesUnavailable
    ``managed-job-infeasible`` when the optimizer finds no enabled place that fits a task. Each task
    is placed on its own, as the controller launches it; tasks with equal resources are
    placed once.
    """
    from styx.ops.stages import check_local_paths
    from styx.spec.support import check_launchable

    check_launchable(dag)
    placed: dict[Any, str] = {}  # (resources, num_nodes, config) -> infra
    for index, task in enumerate(dag.tasks):
        try:
            check_local_paths(task)
            key = (task.resources, task.num_nodes, task.config)
            if key not in placed:
                placed[key] = _place(task)
            _check_destinations(task, placed[key])
        except StyxError as err:
            if len(dag.tasks) > 1:
                err.details.setdefault("task", index)
                err.message = f"Task {_label(task, index)}: {err.message}"
                err.args = (err.message,)
            raise


def _label(task: Task, index: int) -> str:
    return f"'{task.name}' ([{index}])" if task.name else f"[{index}]"


def _place(task: Task) -> str:
    """The infra the optimizer would put ``task`` on now; ``managed-job-infeasible`` when none."""
    from styx.ops.stages import choose_placement

    try:
        return choose_placement(task, _PROBE_CLUSTER).infra
    except ResourcesUnavailable as err:
        raise ResourcesUnavailable(
            f"The job was not queued, since it could never start: {err.message}",
            err.hint,
            code=INFEASIBLE,
            details={**err.details, "cause": err.code},
        ) from err


def _check_destinations(task: Task, infra: str) -> None:
    """File-mount destinations the infra's nodes would refuse (before any node exists)."""
    from styx.ops.stages import destinations
    from styx.providers.registry import get_provider

    if any(m.is_local for m in task.file_mounts.values()):
        destinations(task, get_provider(infra), _PROBE_CLUSTER)
