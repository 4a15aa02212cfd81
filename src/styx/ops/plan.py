"""``launch --dryrun``: the optimizer's plan and the parsed task, printed; nothing changes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from styx.cluster.dests import NodeFolders
    from styx.spec.task import Task


def print_plan(task: Task, cluster_name: str) -> None:
    """The considered resources (the choice and the runners-up) and the task as parsed, with
    secrets redacted. Every check a launch runs before provisioning runs first, and raises
    as the launch would: exit 0 means the launch would start."""
    from styx.ops import common
    from styx.optimizer import optimize_task, render_plan
    from styx.providers.checks import infra_choices
    from styx.spec.support import check_launchable

    common.user_config()  # a broken config.yaml fails a launch first
    check_launchable(task)  # unsupported fields, env and secret values still missing
    from styx.ops import stages, storage

    stages.check_local_paths(task)
    storage.mounts_of(task)  # malformed bucket URLs (the buckets themselves: at launch)
    plan = optimize_task(task, choices=infra_choices(task))
    check_destinations(task, plan.chosen.infra, cluster_name)
    from styx.ops.pipeline import console as make_console

    console = make_console()  # piped: wide, so no cell of the plan is cut
    console.print(f"[bold]Plan[/] (dry run) for cluster [bold]{cluster_name}[/]")
    console.print(render_plan(plan))
    for warning in common.launch_warnings(task, plan.chosen.infra):
        console.print(warning, style="yellow", markup=False, soft_wrap=True)
    console.print("[bold]Task[/] (as parsed; secrets redacted):")
    text = yaml.safe_dump(task.to_display_dict(), sort_keys=False, default_flow_style=False)
    console.print(text.rstrip(), markup=False)


def _node_folders(infra: str | None, cluster_name: str) -> NodeFolders:
    """Where a sync may write on the nodes of ``cluster_name``: its own when it exists, else
    those ``infra`` would make, else (an infra Styx cannot launch on) any remote node's."""
    from styx.errors import NotSupportedError
    from styx.ops import common
    from styx.providers.base import remote_node_folders
    from styx.providers.registry import get_provider
    from styx.state.clusters import get_cluster

    record = get_cluster(common.database(), cluster_name)
    if record is not None:
        handle = common.handle_of(record)
        return common.provider_of(record).node_folders(cluster_name, handle)
    try:
        provider = get_provider(infra) if infra else None
    except NotSupportedError:
        provider = None
    return provider.node_folders(cluster_name, None) if provider else remote_node_folders(None)


def check_destinations(task: Task, infra: str | None, cluster_name: str) -> None:
    """The path checks a launch runs before provisioning, for the infra the plan chose: the
    local paths exist and every file mount may land where it says."""
    from styx.cluster.dests import resolve
    from styx.ops import stages

    stages.check_local_paths(task)
    local = [d for d, m in task.file_mounts.items() if m.is_local]
    if local:
        folders = _node_folders(infra, cluster_name)
        for dest in local:
            resolve(dest, folders)


def validate_destinations(task: Task) -> None:
    """``styx validate``'s check of a task's file mount destinations, against the infra a
    launch would choose now (every remote node's rules when nothing fits now)."""
    from styx.cluster.dests import resolve
    from styx.errors import StyxError
    from styx.optimizer import optimize_task
    from styx.providers.checks import infra_choices

    local = [d for d, m in task.file_mounts.items() if m.is_local]
    if not local:
        return
    try:
        infra: str | None = optimize_task(task, choices=infra_choices(task)).chosen.infra
    except StyxError:
        infra = None  # nothing fits now: a launch says so; the paths are still checked
    folders = _node_folders(infra, "CLUSTER")
    for dest in local:
        resolve(dest, folders)
