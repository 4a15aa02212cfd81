"""Made-up clusters for benchmarks, screenshots and manual testing of ``styx status``."""

from __future__ import annotations

import time

from styx.state.clusters import upsert_cluster
from styx.state.db import Database
from styx.state.records import ClusterStatus

_STATUSES = (ClusterStatus.UP, ClusterStatus.STOPPED, ClusterStatus.INIT, ClusterStatus.DEGRADED)


def seed_demo_clusters(db: Database, n: int, *, prefix: str = "demo") -> list[str]:
    """Create (or overwrite) ``n`` plausible local clusters named ``{prefix}-000``...; their names."""
    names = []
    now = time.time()
    for i in range(n):
        name = f"{prefix}-{i:03d}"
        upsert_cluster(
            db,
            name,
            provider="local",
            handle={
                "cluster_name": name,
                "nodes": [{"id": f"node-{i}-0", "internal_ip": "127.0.0.1"}],
                "ssh": {"user": "styx", "key_path": "~/.styx/keys/styx"},
            },
            status=_STATUSES[i % len(_STATUSES)],
            launched_resources={"infra": "local", "cpus": 2 + i % 6, "memory": 4 + i % 12},
            num_nodes=1 + i % 3,
            launched_at=now - 3600 * (i % 48),
            last_use=f"styx launch -c {name} task.yaml",
            autostop={"idle_minutes": 30, "down": i % 2 == 0} if i % 3 == 0 else None,
            user_name="demo",
        )
        names.append(name)
    return names
