"""``launch --dryrun``: the optimizer's plan and the parsed task, printed; nothing changes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import yaml
from rich.console import Console

if TYPE_CHECKING:
    from styx.spec.task import Task


def print_plan(task: Task, cluster_name: str) -> None:
    """The considered resources (the choice and the runners-up) and the task as parsed, with
    secrets redacted. An infeasible request raises the optimizer's error, as launch would."""
    from styx.ops.stages import infra_offers
    from styx.optimizer import optimize_task, render_plan

    console = Console(highlight=False)
    console.print(f"[bold]Plan[/] (dry run) for cluster [bold]{cluster_name}[/]")
    plan = optimize_task(task, offers=infra_offers(task))
    console.print(render_plan(plan))
    if plan.chosen.infra not in ("local", "ssh"):
        console.print(
            f"[yellow]Note:[/] launching on '{plan.chosen.infra}' is not supported by this "
            "version of Styx yet; use `infra: local` or `infra: ssh/<pool>`."
        )
    console.print("[bold]Task[/] (as parsed; secrets redacted):")
    text = yaml.safe_dump(task.to_display_dict(), sort_keys=False, default_flow_style=False)
    console.print(text.rstrip(), markup=False)
