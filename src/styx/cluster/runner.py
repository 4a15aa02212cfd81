"""Command runners: how Styx runs an argv on a cluster node and copies files to it.

Every runner takes argv lists (never shell strings built from user data) and returns a
:class:`RunResult`. Failures are classified by the runner from exit codes and what it knows,
never from stderr text alone.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from styx.errors import HostUnreachable, RemoteError


@dataclasses.dataclass(frozen=True, slots=True)
class RunResult:
    """What a command did on a node."""

    returncode: int
    stdout: str
    stderr: str

    def check(self, what: str) -> RunResult:
        """Raise RemoteError naming ``what`` unless the command succeeded."""
        if self.returncode != 0:
            tail = (self.stderr or self.stdout).strip().splitlines()[-3:]
            raise RemoteError(
                f"{what} failed with exit code {self.returncode}: {' | '.join(tail) or 'no output'}.",
            )
        return self


class Runner(Protocol):
    """Runs commands on one node and syncs files to it."""

    node_name: str

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        input_text: str | None = None,
        timeout: float | None = None,
    ) -> RunResult: ...

    def rsync_up(
        self, src: str, dst: str, *, filter_args: Sequence[str] = (), delete: bool = False
    ) -> None:
        """Copy ``src`` (a file or folder) to ``dst`` on the node; ``filter_args`` are rsync's.

        With ``delete`` files under ``dst`` that ``src`` lacks are removed: only for folders
        Styx made itself (see :mod:`styx.cluster.dests`)."""
        ...


#: The longest a single sync may take before it is reported as stuck.
RSYNC_TIMEOUT_S = 3600.0


class LocalRunner:
    """Runs on this machine: the runner of the local provider."""

    def __init__(self, node_name: str = "localhost") -> None:
        self.node_name = node_name

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        input_text: str | None = None,
        timeout: float | None = None,
    ) -> RunResult:
        full_env = {**os.environ, **env} if env else None
        try:
            proc = subprocess.run(
                list(argv),
                env=full_env,
                cwd=cwd,
                input=input_text,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError as e:  # as a shell (and ssh) reports it: exit 127
            return RunResult(127, "", f"{argv[0]}: {e.strerror}")
        except subprocess.TimeoutExpired as e:
            raise HostUnreachable(
                f"{argv[0]!r} on {self.node_name} did not finish in {timeout:.0f} s."
            ) from e
        return RunResult(proc.returncode, proc.stdout, proc.stderr)

    def rsync_up(
        self, src: str, dst: str, *, filter_args: Sequence[str] = (), delete: bool = False
    ) -> None:
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        if shutil.which("rsync") is None:
            _copy_tree(src, dst)
            return
        argv = ["rsync", "-a", *(["--delete"] if delete else []), *filter_args]
        src_arg = src.rstrip("/") + "/" if os.path.isdir(src) else src
        self.run([*argv, "--", src_arg, dst], timeout=RSYNC_TIMEOUT_S).check(
            f"rsync {src} -> {dst}"
        )


def _copy_tree(src: str, dst: str) -> None:
    if os.path.isdir(src):
        shutil.copytree(src, dst, dirs_exist_ok=True)
    else:
        shutil.copy2(src, dst)


def put_file(runner: Runner, text: str, dest: str, *, mode: int = 0o600) -> None:
    """Write ``text`` to the file ``dest`` on the runner's node, through its file sync."""
    import tempfile

    with tempfile.NamedTemporaryFile("w", delete=False) as f:
        f.write(text)
    try:
        os.chmod(f.name, mode)
        runner.rsync_up(f.name, dest)
    finally:
        os.unlink(f.name)
