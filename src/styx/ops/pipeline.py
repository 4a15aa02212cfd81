"""A launch is a pipeline of named stages, each shown with a spinner and its duration.

Stage lines go to stderr so that a job's output on stdout stays clean for pipes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

STAGES = ("optimize", "provision", "runtime", "sync workdir", "sync file mounts", "setup", "exec")


class Pipeline:
    """Runs stages in order, reporting each; ``quiet`` prints nothing."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet
        self.timings: dict[str, float] = {}
        self._console: Any = None

    @property
    def console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False)
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
