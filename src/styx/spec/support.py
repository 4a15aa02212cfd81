"""What Styx can parse but not launch yet, and the checks the launch operation runs.

Every field of the SkyPilot dialect is parsed and validated, so a file is either wrong
(SpecError at load time) or right; :func:`unsupported_features` then lists the valid fields
that later work will implement, and :func:`check_launchable` turns that list (and env or
secret values still missing) into one clear error.
"""

from __future__ import annotations

from styx.errors import NotSupportedError, SpecError
from styx.spec import limits
from styx.spec.dag import Dag
from styx.spec.task import Task
from styx.spec.yamlio import format_path


def unsupported_features(task: Task) -> list[tuple[str, str]]:
    """``(YAML path, what)`` for each valid field of ``task`` that Styx cannot launch yet."""
    found: list[tuple[str, str]] = []
    for dest, mount in task.file_mounts.items():
        path = format_path(("file_mounts", dest))
        if mount.is_volume:
            found.append((path, "volume mounts in file_mounts"))
    if task.volumes:
        found.append(("volumes", "volumes"))
    return found


def unsupported_dag_features(dag: Dag) -> list[tuple[str, str]]:
    """Like :func:`unsupported_features` for a whole DAG; paths are ``[n].field``."""
    found: list[tuple[str, str]] = []
    if dag.execution == "parallel":
        found.append(("execution", "job groups (execution: parallel)"))
    many = len(dag.tasks) > 1
    for index, task in enumerate(dag.tasks):
        for path, what in unsupported_features(task):
            found.append((f"[{index}].{path}" if many else path, what))
    return found


def check_launchable(target: Task | Dag) -> None:
    """Raise if ``target`` cannot be launched as it is.

    SpecError ``missing-value`` when an env or secret declared as null got no value from
    --env/--secret; NotSupportedError ``not-supported`` naming every unsupported field.
    """
    tasks = target.tasks if isinstance(target, Dag) else (target,)
    for task in tasks:
        sizes = {k: len(v.encode()) for k, v in task.envs.items() if v is not None}
        sizes.update({k: len(v.reveal().encode()) for k, v in task.secrets.items() if v})
        problem = limits.envs_total_problem(sizes)
        if problem:
            raise SpecError(problem, limits.ENV_HINT, code="invalid-env-value")
        missing = task.missing_values()
        if missing:
            kind = "--secret" if missing[0].startswith("secrets.") else "--env"
            name = missing[0].split(".", 1)[1]
            raise SpecError(
                f"'{missing[0]}' is declared without a value and none was given.",
                f"Pass {kind} {name}=VALUE, or set a value in the YAML file.",
                code="missing-value",
                details={"missing": missing},
            )
    found = (
        unsupported_dag_features(target)
        if isinstance(target, Dag)
        else (unsupported_features(target))
    )
    if found:
        listed = "; ".join(f"{what} ({path})" for path, what in found)
        raise NotSupportedError(
            f"Styx cannot launch this yet: {listed}.",
            "Remove these fields for now; the task file itself is valid.",
            details={"features": [{"path": p, "what": w} for p, w in found]},
        )
