"""Small rendering helpers shared by the CLI commands."""

from __future__ import annotations

import click

from styx.errors import StyxError


def print_error_brief(prefix: str, err: StyxError) -> None:
    """One error on two lines: where and what, then the hint."""
    loc = f" {err.location}" if err.location else f" {prefix}"
    click.echo(click.style(f"error [{err.code}]", fg="red") + f"{loc}: {err.message}", err=True)
    if err.hint:
        click.echo(f"  hint: {err.hint}", err=True)
