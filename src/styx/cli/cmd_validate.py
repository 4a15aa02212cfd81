"""``styx validate``: check task files without running them."""

from __future__ import annotations

import click


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate(files: tuple[str, ...]) -> int:
    """Check task YAML files (single tasks, pipelines and DAGs) and report every error."""
    from styx.cli.render import print_error_brief
    from styx.errors import StyxError
    from styx.spec.dag import Dag

    failed = 0
    for path in files:
        try:
            dag = Dag.from_yaml(path)
            if any(t.file_mounts for t in dag.tasks):
                from styx.ops.plan import validate_destinations  # the planner, only when needed

                for task in dag.tasks:
                    validate_destinations(task)
        except StyxError as err:
            failed += 1
            print_error_brief(path, err)
            continue
        n = len(dag.tasks)
        click.echo(f"{click.style('ok', fg='green')}  {path} ({n} task{'s' if n != 1 else ''})")
    if failed:
        click.echo(f"{failed} of {len(files)} file(s) invalid.", err=True)
        return 2
    return 0
