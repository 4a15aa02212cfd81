"""The command a local cluster's agent runs when autostop fires (``styx.ops.autostop_hook``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from styx.providers.base import ClusterHandle
from styx.providers.local import LocalProvider

REPO = Path(__file__).resolve().parents[2]


def _handle(name: str) -> ClusterHandle:
    return ClusterHandle(
        cluster_name=name,
        provider="local",
        nodes=(),
        agent_root="/nonexistent",
        python=sys.executable,
        workdir="",
        ray_port=0,
    )


def test_local_autostop_argv_runs_the_hook_for_an_unknown_cluster(tmp_path: Path) -> None:
    """The provider's argv names a module that runs; a cluster the database does not know is
    left alone (exit 0), so a late hook after `styx down` is harmless."""
    home = tmp_path / "styx-home"
    env = {**os.environ, "STYX_HOME": str(home), "PYTHONPATH": str(REPO / "src")}
    env.pop("STYX_DB_URL", None)
    stop, down = LocalProvider().autostop_commands(_handle("gone"))
    assert stop[1:3] == ["-m", "styx.ops.autostop_hook"] and stop[-1] == "stop"
    assert down[-1] == "down" and stop[:-1] == down[:-1]
    for argv in (stop, down):
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
