"""The agent's map from config ranks to Ray nodes, against scripted node listings (no Ray).

Ray's node listing can lack a live node for one answer (seen under CI load as a multi-node job
failing with ``KeyError: 0`` while it reserved its gang); the map must ride over such a gap."""

from __future__ import annotations

from typing import Any

from styx.agent.execution import RayExecutor
from styx.agent.protocol import AgentConfig, AutostopConfig, NodeInfo

HEAD, WORKER = "198.18.5.1", "198.18.5.2"


class FakeRay:
    def __init__(self) -> None:
        self.listing: list[dict[str, Any]] = []

    def nodes(self) -> list[dict[str, Any]]:
        return self.listing


def node(ip: str, node_id: str, head: bool = False) -> dict[str, Any]:
    res = {"CPU": 2.0, f"node:{ip}": 1.0}
    if head:
        res["node:__internal_head__"] = 1.0
    return {"NodeID": node_id, "NodeManagerAddress": ip, "Alive": True, "Resources": res}


def executor() -> tuple[RayExecutor, FakeRay]:
    cfg = AgentConfig(
        cluster_name="c",
        styx_version="t",
        ray_address=f"{HEAD}:46380",
        nodes=[NodeInfo(HEAD, "head", 2, 4), NodeInfo(WORKER, "w1", 2, 4)],
        autostop=AutostopConfig(),
        stop_command=["true"],
        down_command=["true"],
    )
    ex = RayExecutor(cfg)
    fake = FakeRay()
    ex._ray = fake
    return ex, fake


def test_a_listing_without_the_head_keeps_its_resource_name() -> None:
    ex, fake = executor()
    fake.listing = [node(HEAD, "h", head=True), node(WORKER, "w")]
    assert ex.refresh_nodes() == [True, True]
    fake.listing = [node(WORKER, "w")]  # one answer without the head
    assert ex.refresh_nodes() == [False, True]
    assert ex._rank_resource == {0: f"node:{HEAD}", 1: f"node:{WORKER}"}
    assert 0 not in ex._rank_node_ids  # a one-node job still looks again before it pins


def test_a_head_registered_as_loopback_is_found_by_its_role() -> None:
    ex, fake = executor()
    fake.listing = [node("127.0.0.1", "h", head=True), node(WORKER, "w")]
    assert ex.refresh_nodes() == [True, True]
    assert ex._rank_resource[0] == "node:__internal_head__"
    assert ex._rank_node_ids == {0: "h", 1: "w"}
