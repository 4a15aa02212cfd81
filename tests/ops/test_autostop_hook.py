"""The command a local cluster's agent runs when autostop fires (``styx.ops.autostop_hook``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_autostop_flushes_bucket_mounts_before_the_stop_and_drops_temporary_buckets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Cached writes reach their buckets before the machines go; after a down the cluster's
    ``persistent: false`` buckets go too (as `styx down` does)."""
    from styx.ops import autostop_hook, common, jobs_ops, storage
    from styx.state import clusters

    calls: list[str] = []

    class Provider:
        def stop(self, handle: ClusterHandle) -> None:
            calls.append("stop")

        def terminate(self, handle: ClusterHandle) -> None:
            calls.append("terminate")

    monkeypatch.setattr(common, "database", lambda: object())
    monkeypatch.setattr(clusters, "get_cluster", lambda db, name: object())
    monkeypatch.setattr(common, "handle_of", lambda record: _handle("c"))
    monkeypatch.setattr(common, "provider_of", lambda record: Provider())
    monkeypatch.setattr(jobs_ops, "save_history", lambda db, handle: None)
    monkeypatch.setattr(
        clusters, "delete_cluster", lambda db, name, message: calls.append("forget")
    )
    monkeypatch.setattr(clusters, "set_cluster_status", lambda *a, **k: calls.append("stopped"))
    monkeypatch.setattr(storage, "release", lambda handle, provider: calls.append("release") or 0)
    monkeypatch.setattr(storage, "after_down", lambda db, name: calls.append("buckets") or [])
    autostop_hook.autostop_fired("c", down=False)
    assert calls == ["release", "stopped", "stop"]
    calls.clear()
    autostop_hook.autostop_fired("c", down=True)
    assert calls == ["release", "forget", "terminate", "buckets"]
