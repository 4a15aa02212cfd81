"""``launch --dryrun``: the parsed plan, printed; nothing is changed anywhere."""

from __future__ import annotations

from typing import TYPE_CHECKING

import yaml
from rich.console import Console
from rich.table import Table

from styx.errors import StyxError

if TYPE_CHECKING:
    from styx.spec.task import Task


def print_plan(task: Task, cluster_name: str) -> None:
    """The task as parsed (secrets redacted) and its resource candidates as written."""
    console = Console(highlight=False)
    console.print(f"[bold]Plan[/] (dry run) for cluster [bold]{cluster_name}[/]")
    table = Table(box=None, header_style="bold")
    for col in ("#", "INFRA", "CPUS", "MEMORY", "ACCELERATORS", "INSTANCE", "SPOT", "RUNNABLE"):
        table.add_column(col)
    from styx.ops.stages import choose_placement

    try:
        chosen = choose_placement(task, cluster_name).resources
    except StyxError:
        chosen = None
    for i, c in enumerate(task.resources.candidates()):
        table.add_row(
            str(i + 1),
            str(c.infra) if c.infra else "local (default)",
            str(c.cpus.to_yaml()) if c.cpus else "-",
            str(c.memory.to_yaml()) if c.memory else "-",
            ", ".join(str(a) for a in c.accelerators) or "-",
            c.instance_type or "-",
            "yes" if c.use_spot else "-",
            "[green]chosen[/]"
            if c == chosen
            else "[dim]not yet supported[/]"
            if c.cloud not in (None, "local")
            else "-",
        )
    console.print(table)
    order = "ordered: first feasible wins" if task.resources.is_ordered else "cheapest wins"
    if len(task.resources.candidates()) > 1:
        console.print(f"[dim]{len(task.resources.candidates())} candidates; {order}.[/]")
    console.print("[bold]Task[/] (as parsed; secrets redacted):")
    text = yaml.safe_dump(task.to_display_dict(), sort_keys=False, default_flow_style=False)
    console.print(text.rstrip(), markup=False)
