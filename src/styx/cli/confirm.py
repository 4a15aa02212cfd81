"""Confirmation prompts, as SkyPilot asks them: ``Proceed? [Y/n]``, skipped with ``-y``.

The rule when stdin is not a terminal (a script, a pipe, CI) is :data:`NO_TTY_RULE`: what only
costs money (launching a new cluster, restarting one) proceeds as if ``-y`` was given; what
destroys something (``down``, ``stop``, ``cancel --all``) refuses without ``-y``, since nobody
is there to answer and a SkyPilot script without ``-y`` would not get past the question either.
"""

from __future__ import annotations

import sys

import click

from styx.errors import UsageError

NO_TTY_RULE = (
    "Without a terminal on stdin, launch and start proceed as if -y was given; "
    "down, stop and cancel --all need -y."
)


def confirm(question: str, *, yes: bool, destructive: bool) -> None:
    """Ask ``question`` (ending in "Proceed?") on the terminal; return to go on.

    ``yes`` skips the question. Declining prints that nothing changed and exits 1. Without a
    terminal on stdin: return, or, when ``destructive``, raise UsageError
    ``confirmation-required`` that states :data:`NO_TTY_RULE`.
    """
    if yes:
        return
    if not _stdin_is_terminal():
        if not destructive:
            return
        raise UsageError(
            f"{question.removesuffix(' Proceed?')}: this needs a confirmation, and stdin is "
            "not a terminal to ask on.",
            f"Pass -y to proceed. {NO_TTY_RULE}",
            code="confirmation-required",
        )
    if not click.confirm(question, default=True, err=True):
        click.echo("Aborted; nothing was changed.", err=True)
        raise click.exceptions.Exit(1)


def _stdin_is_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):  # a closed stdin
        return False
