"""``styx serve``: services behind a load balancer (up, status, update, down, logs).

Faces only: the commands call :mod:`styx.serve.api` (as the SDK's ``styx.serve`` does) and
print what it returns. The serve controller daemon does the work.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import click

from styx.cli.cmd_cluster import _overrides, override_options


@click.group()
def serve() -> None:
    """Services: replicas behind a load balancer, with autoscaling and rolling updates."""


def _task(yaml_file: str, kw: dict[str, Any]) -> Any:
    from styx.ops.launch import load_task

    return load_task(yaml_file, _overrides(kw), None)


@serve.command()
@click.argument("yaml_file", type=click.Path(exists=True, dir_okay=False), metavar="SERVICE.yaml")
@click.option("-n", "--service-name", default=None, help="Name of the service.")
@click.option(
    "--host", default=None, help="Address the load balancer listens on (default 127.0.0.1)."
)
@click.option(
    "--port",
    type=int,
    default=None,
    help="Port of the load balancer (default: the first free from 30001).",
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@override_options
def up(
    yaml_file: str,
    service_name: str | None,
    host: str | None,
    port: int | None,
    yes: bool,
    **kw: Any,
) -> int:
    """Start a service: its replicas are launched, and its load balancer sends requests to
    those whose readiness probe passes."""
    from styx.cli.confirm import confirm
    from styx.serve import api

    task = _task(yaml_file, kw)
    name = api.check_name(service_name or f"service-{secrets.token_hex(2)}")
    api.check_service(task)
    confirm(f"Launching a new service {name!r}. Proceed?", yes=yes, destructive=False)
    record = api.up(task, name, host=host or api.DEFAULT_HOST, port=port)
    click.echo(f"Service {name!r} is starting. Its endpoint: {record.endpoint}")
    click.echo(f"  Status:  styx serve status {name}", err=True)
    click.echo(f"  Logs:    styx serve logs {name} --controller", err=True)
    click.echo(f"  Try it:  curl {record.endpoint}", err=True)
    return 0


@serve.command()
@click.argument("service_names", nargs=-1)
@click.option("--endpoint", is_flag=True, help="Print only the endpoint of the service.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def status(service_names: tuple[str, ...], endpoint: bool, as_json: bool) -> int:
    """Show services and their replicas: status, version, endpoint, infra."""
    from styx.cli.tables import _ago, render
    from styx.errors import UsageError
    from styx.serve import api

    views = api.status(service_names)
    if endpoint:
        if len(views) != 1:
            raise UsageError(
                "--endpoint needs exactly one service.",
                "Run `styx serve status NAME --endpoint`.",
                code="invalid-usage",
            )
        click.echo(views[0].service.endpoint)
        return 0
    if as_json:
        click.echo(json.dumps([v.to_json() for v in views], indent=2))
        return 0
    if not views:
        click.echo("No existing services.")
        return 0
    click.echo("Services")
    rows = []
    for v in views:
        s = v.service
        ready = sum(r.status.value == "READY" for r in v.replicas)
        live = sum(r.status.value not in ("FAILED", "PREEMPTED") for r in v.replicas)
        rows.append(
            [
                s.name,
                str(s.version),
                _ago(s.created_at),
                s.status.value,
                f"{ready}/{live}",
                s.endpoint,
            ]
        )
    render(["NAME", "VERSION", "CREATED", "STATUS", "REPLICAS", "ENDPOINT"], rows)
    replicas = [r for v in views for r in v.replicas]
    if replicas:
        click.echo("\nService Replicas")
        render(
            ["SERVICE_NAME", "ID", "VERSION", "ENDPOINT", "LAUNCHED", "INFRA", "STATUS", "REASON"],
            [
                [
                    r.service,
                    str(r.replica_id),
                    str(r.version),
                    r.endpoint or "-",
                    _ago(r.launched_at),
                    (r.infra or "-") + (" (spot)" if r.use_spot else ""),
                    r.status.value,
                    r.reason or "-",
                ]
                for r in replicas
            ],
            max_width=80,
        )
    failed = [v.service for v in views if v.service.failure_reason]
    for s in failed:
        click.echo(f"\n{s.name}: {s.failure_reason}", err=True)
    return 0


@serve.command()
@click.argument("service_name")
@click.argument("yaml_file", type=click.Path(exists=True, dir_okay=False), metavar="SERVICE.yaml")
@click.option(
    "--mode", type=click.Choice(["rolling", "blue_green"]), default="rolling", show_default=True,
    help="rolling: replace replicas as new ones become READY; blue_green: switch once all are.",
)  # fmt: skip
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@override_options
def update(service_name: str, yaml_file: str, mode: str, yes: bool, **kw: Any) -> int:
    """Roll a new version of a service out, with no request failing."""
    from styx.cli.confirm import confirm
    from styx.serve import api

    task = _task(yaml_file, kw)
    api.check_service(task)
    confirm(f"Updating service {service_name!r} ({mode}). Proceed?", yes=yes, destructive=False)
    version = api.update(service_name, task, mode=mode)
    click.echo(f"Service {service_name!r}: version {version} is rolling out ({mode}).")
    return 0


@serve.command()
@click.argument("service_names", nargs=-1)
@click.option("-a", "--all", "all_", is_flag=True, help="Tear down every service.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--no-wait", is_flag=True, help="Return once asked, without waiting.")
def down(service_names: tuple[str, ...], all_: bool, yes: bool, no_wait: bool) -> int:
    """Tear services down: their replicas, load balancer and records."""
    from styx.cli.confirm import confirm
    from styx.serve import api

    what = "every service" if all_ else ", ".join(service_names) or "nothing"
    if bool(service_names) != all_:
        confirm(
            f"Tearing down {what}, with all their replicas. Proceed?", yes=yes, destructive=True
        )
    from rich.console import Console

    with Console(stderr=True).status(f"Tearing down {what}..."):
        done = api.down(service_names, all_=all_, wait=not no_wait)
    for name in done:
        click.echo(f"Service {name!r}: {'shutting down' if no_wait else 'torn down'}.")
    if not done:
        click.echo("No existing services.")
    return 0


@serve.command()
@click.argument("service_name")
@click.argument("replica_id", required=False, type=int)
@click.option("--controller", is_flag=True, help="The controller's log of the service.")
@click.option("--load-balancer", is_flag=True, help="The load balancer's log.")
@click.option(
    "--follow/--no-follow", default=True, show_default=True, help="Keep printing new output."
)
def logs(
    service_name: str, replica_id: int | None, controller: bool, load_balancer: bool, follow: bool
) -> int:
    """Show a service's logs: a replica's output, or the controller's or load balancer's log."""
    import sys

    from styx.errors import UsageError
    from styx.serve import api

    chosen = [
        t
        for t, on in (
            ("controller", controller),
            ("load-balancer", load_balancer),
            (replica_id, replica_id is not None),
        )
        if on
    ]
    if len(chosen) != 1:
        raise UsageError(
            "Give one of REPLICA_ID, --controller and --load-balancer.",
            f"Run `styx serve logs {service_name} 1`, or with --controller or --load-balancer.",
            code="invalid-usage",
        )
    for text in api.logs(
        service_name, chosen[0] if chosen[0] is not None else "controller", follow=follow
    ):  # type: ignore[arg-type]
        sys.stdout.write(text)
        sys.stdout.flush()
    return 0
