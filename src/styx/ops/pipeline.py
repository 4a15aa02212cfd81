"""A launch is a pipeline of named stages, each shown with a spinner and its duration.

Stage lines go to stderr so that a job's output on stdout stays clean for pipes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

STAGES = ("optimize", "provision", "runtime", "sync workdir", "sync file mounts", "setup", "exec")


#: The width of a rich console that writes to a pipe or a file: no line or table is cut.
PIPED_WIDTH = 10_000


def console(*, stderr: bool = False) -> Any:
    """A rich console for Styx's output. On a terminal it has the terminal's width; piped (a
    file, ``grep``, a script), it is :data:`PIPED_WIDTH` wide, where rich would assume 80
    columns and cut table cells (``lambda/a…``)."""
    from rich.console import Console

    out = Console(stderr=stderr, highlight=False)
    if not out.is_terminal:
        out = Console(stderr=stderr, highlight=False, width=PIPED_WIDTH)
    return out


class Pipeline:
    """Runs stages in order, reporting each; ``quiet`` prints nothing."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet
        self.timings: dict[str, float] = {}
        self._console: Any = None

    @property
    def console(self) -> Any:
        if self._console is None:
            self._console = console(stderr=True)
        return self._console

    @contextmanager
    def stage(self, name: str, description: str) -> Iterator[None]:
        """Run the body as stage ``name``; a failure marks the stage and propagates."""
        start = time.perf_counter()
        if self.quiet:
            yield
            self.timings[name] = time.perf_counter() - start
            return
        status = self.console.status(f"[bold]{name}[/]: {description}", spinner="dots")
        status.start()
        try:
            yield
        except BaseException:
            status.stop()
            self.console.print(f"[red]✗[/] [bold]{name}[/]: {description}")
            raise
        status.stop()
        elapsed = time.perf_counter() - start
        self.timings[name] = elapsed
        self.console.print(f"[green]✓[/] [bold]{name}[/]: {description} [dim]({elapsed:.2f} s)[/]")

    def skip(self, name: str, why: str) -> None:
        """Report a stage that had nothing to do."""
        if not self.quiet:
            self.console.print(f"[dim]- {name}: {why}[/]")

    def note(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text)
