"""The ``styx`` command: a lazy command registry, error rendering and exit codes.

Nothing heavy is imported here: ``styx --help`` must stay instant, so each command's module is
imported only when that command runs. Commands raise :class:`styx.errors.StyxError`; this module
turns them into a short message (code, what happened, what to do) and the error's exit code.
``--debug`` (or ``STYX_DEBUG=1``) adds the traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

# name -> (module, attribute, one-line help). The help text lives here so that listing the
# commands imports none of them.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "launch": (
        "styx.cli.cmd_cluster",
        "launch",
        "Launch a task on a cluster (creating it if needed).",
    ),
    "exec": ("styx.cli.cmd_cluster", "exec_", "Run a task on an existing cluster."),
    "status": ("styx.cli.cmd_status", "status", "Show clusters."),
    "queue": ("styx.cli.cmd_cluster", "queue", "Show a cluster's job queue."),
    "logs": ("styx.cli.cmd_cluster", "logs", "Show or follow a job's logs."),
    "cancel": ("styx.cli.cmd_cluster", "cancel", "Cancel jobs on a cluster."),
    "stop": ("styx.cli.cmd_cluster", "stop", "Stop clusters, keeping their disks."),
    "start": ("styx.cli.cmd_cluster", "start", "Restart stopped clusters."),
    "down": ("styx.cli.cmd_cluster", "down", "Tear down clusters."),
    "autostop": ("styx.cli.cmd_cluster", "autostop", "Stop or tear down a cluster when idle."),
    "validate": (
        "styx.cli.cmd_validate",
        "validate",
        "Check task YAML files without running them.",
    ),
    "show-gpus": (
        "styx.cli.cmd_catalog",
        "show_gpus",
        "List accelerators, their counts and prices per region.",
    ),
    "check": ("styx.cli.cmd_catalog", "check", "Show which infra is enabled, and why not."),
    "catalog": ("styx.cli.cmd_catalog", "catalog", "Fetch or build instance/price catalogs."),
    "cost-report": (
        "styx.cli.cmd_cost",
        "cost_report",
        "Show what clusters, managed jobs and DAG runs have cost.",
    ),
    "storage": (
        "styx.cli.cmd_storage",
        "storage",
        "Storage objects (named buckets): ls, delete, and a cluster's mounts.",
    ),
    "jobs": (
        "styx.cli.cmd_jobs",
        "jobs",
        "Managed jobs and DAG runs: launch, queue, logs, cancel.",
    ),
    "serve": (
        "styx.cli.cmd_serve",
        "serve",
        "Services behind a load balancer: up, status, update, down, logs.",
    ),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(entry[0])
        command = getattr(module, entry[1])
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            import difflib

            close = difflib.get_close_matches(name, list(COMMANDS), n=1)
            from styx.errors import UsageError

            raise UsageError(
                f"'{name}' is not a styx command.",
                f"Did you mean '{close[0]}'?"
                if close
                else "Run `styx --help` to list the commands.",
                code="unknown-command",
            )
        return super().resolve_command(ctx, args)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="styx", prog_name="styx")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Styx: run AI and batch workloads on any infrastructure from one task description."""
    if debug:
        os.environ["STYX_DEBUG"] = "1"


def render_error(err: BaseException, debug: bool) -> int:
    """Print an error for a human and return the process exit code."""
    from styx.errors import StyxError

    if debug:
        import traceback

        traceback.print_exception(err, file=sys.stderr)
    if isinstance(err, StyxError):
        loc = f" ({err.location})" if err.location else ""
        click.echo(
            click.style(f"Error [{err.code}]{loc}: ", fg="red", bold=True) + err.message, err=True
        )
        if err.hint:
            click.echo(click.style("Hint: ", fg="yellow") + err.hint, err=True)
        return err.exit_code
    click.echo(
        click.style("Error [internal]: ", fg="red", bold=True) + f"{type(err).__name__}: {err}",
        err=True,
    )
    if not debug:
        click.echo(
            "Hint: this is a bug in Styx; rerun with --debug and report the traceback.", err=True
        )
    return 70


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``styx`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("STYX_DEBUG") == "1"
    # Whatever Styx writes (the state database, logs, keys, a local cluster's Ray) is this
    # user's alone; jobs get the usual 022 back (styx.agent.node_task).
    os.umask(0o077)
    try:
        result: Any = cli.main(args=args, prog_name="styx", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    except click.ClickException as e:
        from styx.errors import UsageError

        ctx = getattr(e, "ctx", None)
        where = f"`{ctx.command_path} --help`" if ctx is not None else "the command with --help"
        message = e.format_message().strip()
        message += "" if message.endswith((".", "?", "!", ")")) else "."
        return render_error(UsageError(message, f"Run {where} to see its options."), debug)
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except BaseException as e:
        if isinstance(e, SystemExit):
            return int(e.code) if isinstance(e.code, int) else (0 if e.code is None else 1)
        return render_error(e, debug)
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
