"""Job logs: ``logs/<job_id>/run.log`` (all nodes) and, for multi-node jobs, ``rank-<r>.log``.

Single-node output is written byte for byte as it arrives. Multi-node output is split into
lines and each line of ``run.log`` is prefixed ``(rank R, NAME) ``; a partial line waits for its
newline (or the end of the node's part). Writes go straight to the OS (unbuffered files) and wake
the followers of the job's log at once, so the first output reaches ``styx exec`` quickly.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

RUN_LOG = "run.log"
_READ = 1 << 16


class Signal:
    """A level-triggered wake-up that many coroutines can await (one per job)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float | None = None) -> None:
        event = self._event
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)


class JobLog:
    """Writes one job's logs; ``nodes`` are the node names in rank order.

    A write that fails (a full disk) does not raise: the log stops, ``error`` says why, and
    ``on_error`` is called once, so that the job can be failed with that reason."""

    def __init__(
        self,
        log_dir: Path,
        nodes: list[str],
        on_write: Callable[[], None],
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.multi = len(nodes) > 1
        self._names = nodes
        self._on_write = on_write
        self._on_error = on_error
        self.error: str | None = None
        self._run: Any = None
        self._per_node: list[Any] = []
        self._partial: list[bytes] = [b""] * len(nodes)
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            self._run = open(log_dir / RUN_LOG, "ab", buffering=0)  # noqa: SIM115 (long-lived)
            if self.multi:
                for r in range(len(nodes)):
                    self._per_node.append(open(log_dir / f"rank-{r}.log", "ab", buffering=0))  # noqa: SIM115
        except OSError as e:
            self._failed(e)

    def _failed(self, e: OSError) -> None:
        if self.error is None:
            self.error = f"writing the job's log on the head node failed: {e.strerror or e}"
            if self._on_error is not None:
                self._on_error(self.error)

    def _put(self, f: Any, data: bytes) -> bool:
        if self.error is not None or f is None:
            return False
        try:
            f.write(data)
        except OSError as e:
            self._failed(e)
            return False
        return True

    def write(self, rank: int, data: bytes) -> None:
        """Append what node ``rank`` printed."""
        if not self.multi:
            if self._put(self._run, data):
                self._on_write()
            return
        self._put(self._per_node[rank] if self._per_node else None, data)
        buf = self._partial[rank] + data
        lines = buf.split(b"\n")
        self._partial[rank] = lines.pop()
        if lines:
            prefix = self._prefix(rank)
            if self._put(self._run, b"".join(prefix + line + b"\n" for line in lines)):
                self._on_write()

    def end_part(self, rank: int) -> None:
        """Flush node ``rank``'s unfinished last line."""
        if self.multi and self._partial[rank]:
            self._put(self._run, self._prefix(rank) + self._partial[rank] + b"\n")
            self._partial[rank] = b""
            self._on_write()

    def note(self, text: str) -> None:
        """A line from the agent itself (why a job failed or was cancelled)."""
        self._put(self._run, f"styx: {text}\n".encode())
        self._on_write()

    def _prefix(self, rank: int) -> bytes:
        return f"(rank {rank}, {self._names[rank]}) ".encode()

    def close(self) -> None:
        for r in range(len(self._partial)):
            self.end_part(r)
        for f in (self._run, *self._per_node):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()


def tail_start(path: Path, lines: int | None) -> int:
    """Offset of the last ``lines`` lines of ``path`` (0 for all, or when it is missing)."""
    if not lines or not path.exists():
        return 0
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        end = pos = f.tell()
        found = 0
        while pos > 0:
            step = min(_READ, pos)
            pos -= step
            f.seek(pos)
            block = f.read(step)
            if pos + step == end and block.endswith(b"\n"):
                block = block[:-1]
            for i in range(len(block) - 1, -1, -1):
                if block[i] == 10:
                    found += 1
                    if found == lines:
                        return pos + i + 1
        return 0


async def follow(
    path: Path,
    signal: Signal,
    is_done: Callable[[], bool],
    follow_: bool,
    start: int = 0,
) -> AsyncIterator[bytes]:
    """Bytes of ``path`` from ``start``, as written (no decoding: a job's output need not be
    text): up to the current end, or (``follow_``) until ``is_done()`` and everything written
    before it has been read."""
    offset = start
    fh = None
    try:
        while True:
            done = is_done()  # read *before* draining, so nothing written before the end is lost
            if fh is None and path.exists():
                fh = open(path, "rb")  # noqa: SIM115
                fh.seek(offset)
            data = fh.read(_READ) if fh is not None else b""
            if data:
                offset += len(data)
                yield data
                continue
            if not follow_ or done:
                return
            await signal.wait(timeout=1.0)
    finally:
        if fh is not None:
            fh.close()
