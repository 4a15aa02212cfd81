"""A cluster's network on GCE: the VPC and subnetwork it uses, and its own firewall rules.

The VPC is ``gcp.vpc_name`` (``default`` unless configured); the subnetwork is the first of
``gcp.subnet_names`` in the region, else the network's subnetwork there. Each cluster gets
firewall rules of its own, all targeting its network tag (:func:`instances.network_tag`):

- ``styx-<id>-internal``: every protocol between the cluster's own instances (Ray, the agent);
- ``styx-<id>-ssh``: TCP 22 from anywhere (the client's address is not known to GCE);
- ``styx-<id>-ports``: the task's ``ports``, from anywhere, only when it has some.

Rule names carry the cluster id, so ``down`` finds and deletes exactly the cluster's rules,
also after an interrupted launch. Nothing else is opened.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from styx.errors import FailoverScope, ResourcesUnavailable
from styx.providers.gcp import client
from styx.providers.gcp.errors import operation_error, translated
from styx.providers.gcp.instances import cluster_id, network_tag


@dataclasses.dataclass(frozen=True, slots=True)
class Network:
    network: str  # its self link
    subnetwork: str | None  # the region's subnetwork's self link (None: auto mode)


def find(project: str, region: str, vpc_name: str, subnet_names: Sequence[str]) -> Network:
    """The VPC and the region's subnetwork; ResourcesUnavailable when there is none."""
    with translated(region, action=f"looking up the network {vpc_name}"):
        from google.api_core.exceptions import NotFound  # type: ignore[import-untyped,import-not-found,unused-ignore]

        try:
            net = client.client("NetworksClient").get(
                project=project, network=vpc_name, timeout=client.TIMEOUT_S
            )
        except NotFound:
            raise ResourcesUnavailable(
                f"The VPC network {vpc_name!r} does not exist in project {project}.",
                "Create it, or set gcp.vpc_name in ~/.styx/config.yaml to one that exists.",
                code="network-not-found",
                scope=FailoverScope.CLOUD,
                details={"cloud": "gcp", "region": region},
            ) from None
        subnets = list(
            client.client("SubnetworksClient").list(
                project=project, region=region, timeout=client.TIMEOUT_S
            )
        )
    mine = [s for s in subnets if str(s.network).rstrip("/").endswith(f"/{vpc_name}")]
    if subnet_names:
        mine = [s for s in mine if s.name in subnet_names]
    if not mine and (subnet_names or not net.auto_create_subnetworks):
        raise ResourcesUnavailable(
            f"The VPC network {vpc_name!r} has no subnetwork in {region}.",
            "Add a subnetwork there (or to gcp.subnet_names), or choose another region.",
            code="no-subnet",
            scope=FailoverScope.REGION,
            details={"cloud": "gcp", "region": region},
        )
    return Network(str(net.self_link), str(mine[0].self_link) if mine else None)


def rule_names(cluster: str) -> dict[str, str]:
    base = f"styx-{cluster_id(cluster)}"
    return {k: f"{base}-{k}" for k in ("internal", "ssh", "ports")}


def _port_ranges(ports: Sequence[str]) -> list[str]:
    return [p.replace(":", "-") for p in ports]


def ensure_firewall(
    project: str, region: str, net: Network, cluster: str, ports: Sequence[str]
) -> list[str]:
    """The cluster's firewall rules (made when missing); their names."""
    from google.api_core.exceptions import Conflict  # type: ignore[import-untyped,import-not-found,unused-ignore]
    from google.cloud import compute_v1 as c  # type: ignore[import-untyped,import-not-found,unused-ignore]

    tag = network_tag(cluster)
    names = rule_names(cluster)
    wanted = {
        names["internal"]: c.Firewall(
            name=names["internal"], network=net.network, direction="INGRESS",
            source_tags=[tag], target_tags=[tag],
            allowed=[c.Allowed(I_p_protocol=p) for p in ("tcp", "udp", "icmp")],
            description=f"styx cluster {cluster}: traffic between its nodes",
        ),
        names["ssh"]: c.Firewall(
            name=names["ssh"], network=net.network, direction="INGRESS",
            source_ranges=["0.0.0.0/0"], target_tags=[tag],
            allowed=[c.Allowed(I_p_protocol="tcp", ports=["22"])],
            description=f"styx cluster {cluster}: SSH",
        ),
    }  # fmt: skip
    if ports:
        wanted[names["ports"]] = c.Firewall(
            name=names["ports"], network=net.network, direction="INGRESS",
            source_ranges=["0.0.0.0/0"], target_tags=[tag],
            allowed=[c.Allowed(I_p_protocol="tcp", ports=_port_ranges(ports))],
            description=f"styx cluster {cluster}: the task's ports",
        )  # fmt: skip
    fw = client.client("FirewallsClient")
    ops = []
    with translated(region, action="creating firewall rules"):
        for _name, rule in wanted.items():
            try:
                ops.append(
                    fw.insert_unary(
                        project=project, firewall_resource=rule, timeout=client.TIMEOUT_S
                    )
                )
            except Conflict:
                continue  # made by an earlier attempt of the same cluster
        for op in ops:
            done = client.wait(op, project_id=project, action="creating firewall rules")
            failed = operation_error(
                done, region=region, zone=None, action="creating firewall rules"
            )
            if (
                failed is not None
                and getattr(failed, "details", {}).get("gcp_code") != "RESOURCE_ALREADY_EXISTS"
            ):
                raise failed
    return list(wanted)


def delete_firewall(project: str, region: str, cluster: str) -> None:
    """Delete every firewall rule of the cluster (missing ones are fine)."""
    from google.api_core.exceptions import NotFound  # type: ignore[import-untyped,import-not-found,unused-ignore]

    fw = client.client("FirewallsClient")
    ops: list[Any] = []
    with translated(region, action="deleting firewall rules"):
        prefix = f"styx-{cluster_id(cluster)}-"
        found = [r.name for r in fw.list(project=project, timeout=client.TIMEOUT_S)
                 if str(r.name).startswith(prefix)]  # fmt: skip
        for name in found:
            try:
                ops.append(
                    fw.delete_unary(project=project, firewall=name, timeout=client.TIMEOUT_S)
                )
            except NotFound:
                continue
        for op in ops:
            client.wait(op, project_id=project, action="deleting firewall rules")
