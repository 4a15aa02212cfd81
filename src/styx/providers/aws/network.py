"""Where AWS nodes live: the VPC, a subnet per zone, and the cluster's security group."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from styx.errors import FailoverScope, ResourcesUnavailable, UserInputError
from styx.providers.aws.errors import error_code, translated
from styx.providers.aws.settings import AWSSettings

#: Tag on every resource Styx makes for a cluster; its value is the cluster's name.
CLUSTER_TAG = "styx-cluster"
#: Tag on security groups Styx made and may delete.
MANAGED_TAG = "styx-managed"


@dataclasses.dataclass(frozen=True, slots=True)
class Network:
    """The VPC of a region and the subnet chosen in each of its zones."""

    vpc_id: str
    subnets: dict[str, str]  # zone -> subnet id, zones sorted
    zone_ids: dict[str, str] = dataclasses.field(default_factory=dict)  # use1-az1 -> us-east-1b

    def zone_name(self, zone: str) -> str:
        """A zone's name (``us-east-1b``) from its name or its id (``use1-az1``, the catalog's
        spelling: ids name the same place in every account, names do not)."""
        return self.zone_ids.get(zone, zone)


def _unavailable(message: str, hint: str, region: str, code: str) -> ResourcesUnavailable:
    return ResourcesUnavailable(
        message,
        hint,
        code=code,
        scope=FailoverScope.REGION,
        details={"cloud": "aws", "region": region},
    )


def find_network(ec2: Any, region: str, settings: AWSSettings) -> Network:
    """The VPC (``aws.vpc_name(s)``, else inferred from ``aws.subnet_names``, else the default
    VPC) and one subnet per zone. A region where none is found raises ResourcesUnavailable
    with scope ``REGION``, saying which key to set."""
    with translated(region, action="looking up the VPC"):
        vpc_id = _find_vpc(ec2, region, settings)
        filters = [{"Name": "vpc-id", "Values": [vpc_id]}]
        subnets = ec2.describe_subnets(Filters=filters)["Subnets"]
    if settings.subnet_names:
        wanted = set(settings.subnet_names)
        subnets = [s for s in subnets if s["SubnetId"] in wanted or _name(s) in wanted]
    by_zone: dict[str, list[dict[str, Any]]] = {}
    for subnet in subnets:
        if subnet.get("State", "available") == "available":
            by_zone.setdefault(subnet["AvailabilityZone"], []).append(subnet)
    if not by_zone:
        which = f"named {', '.join(settings.subnet_names)} " if settings.subnet_names else ""
        raise _unavailable(
            f"VPC {vpc_id} has no available subnet {which}in {region}.",
            "Create a subnet in the VPC, or fix aws.subnet_names in ~/.styx/config.yaml.",
            region,
            "no-subnet",
        )

    # Where several subnets share a zone: private ones for internal IPs, else public ones;
    # then the one with the most free addresses.
    def rank(s: dict[str, Any]) -> tuple[bool, int]:
        public = bool(s.get("MapPublicIpOnLaunch"))
        return (public != settings.use_internal_ips, int(s.get("AvailableIpAddressCount", 0)))

    chosen = {zone: max(group, key=rank)["SubnetId"] for zone, group in by_zone.items()}
    ids = {
        s["AvailabilityZoneId"]: s["AvailabilityZone"]
        for s in subnets
        if s.get("AvailabilityZoneId")
    }
    return Network(vpc_id, dict(sorted(chosen.items())), ids)


def _name(resource: dict[str, Any]) -> str | None:
    return next((t["Value"] for t in resource.get("Tags", []) if t["Key"] == "Name"), None)


def _find_vpc(ec2: Any, region: str, settings: AWSSettings) -> str:
    if settings.vpc_names:
        found = ec2.describe_vpcs(
            Filters=[{"Name": "tag:Name", "Values": list(settings.vpc_names)}]
        )["Vpcs"]
        by_name = {_name(v): v["VpcId"] for v in found}
        for name in settings.vpc_names:
            if name in by_name:
                return str(by_name[name])
        raise _unavailable(
            f"No VPC named {' or '.join(settings.vpc_names)} in {region}.",
            "Create it there, or fix aws.vpc_name in ~/.styx/config.yaml.",
            region,
            "vpc-not-found",
        )
    if settings.subnet_names:
        names = list(settings.subnet_names)
        found = ec2.describe_subnets(Filters=[{"Name": "tag:Name", "Values": names}])["Subnets"]
        if not found and all(n.startswith("subnet-") for n in names):
            found = ec2.describe_subnets(SubnetIds=names)["Subnets"]
        vpcs = sorted({s["VpcId"] for s in found})
        if len(vpcs) == 1:
            return str(vpcs[0])
        raise _unavailable(
            f"The subnets {', '.join(names)} are "
            + ("in several VPCs" if vpcs else "not found")
            + f" in {region}.",
            "Set aws.vpc_name, or list subnets of one VPC in aws.subnet_names.",
            region,
            "subnet-not-found",
        )
    found = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    if not found:
        raise _unavailable(
            f"Region {region} has no default VPC, and no VPC is configured.",
            "Set aws.vpc_name in ~/.styx/config.yaml to the Name tag of the VPC to use.",
            region,
            "no-default-vpc",
        )
    return str(found[0]["VpcId"])


# --- security groups --------------------------------------------------------------------------


def parse_ports(ports: tuple[str, ...] | list[str]) -> list[tuple[int, int]]:
    """``("8080", "9000-9010")`` as ``[(8080, 8080), (9000, 9010)]``."""
    out: list[tuple[int, int]] = []
    for raw in ports:
        text = str(raw).strip()
        low, sep, high = text.partition("-")
        try:
            first, last = int(low), int(high) if sep else int(low)
        except ValueError:
            raise UserInputError(
                f"'{raw}' is not a port or a port range.", "Write ports as 8080 or 8080-8090."
            ) from None
        if not 1 <= first <= last <= 65535:
            raise UserInputError(
                f"'{raw}' is not a port range within 1-65535.", "Write ports as 8080 or 8080-8090."
            )
        out.append((first, last))
    return out


def _permissions(group_id: str, ports: list[tuple[int, int]]) -> list[dict[str, Any]]:
    world = [{"CidrIp": "0.0.0.0/0"}]
    rules: list[dict[str, Any]] = [
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": world}
    ]
    for first, last in sorted(set(ports)):
        if (first, last) != (22, 22):
            rules.append(
                {"IpProtocol": "tcp", "FromPort": first, "ToPort": last, "IpRanges": world}
            )
    # The nodes talk to each other on any port (Ray, the task's own traffic).
    rules.append({"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group_id}]})
    return rules


def _rule_key(rule: dict[str, Any]) -> tuple[Any, ...]:
    return (rule["IpProtocol"], rule.get("FromPort"), rule.get("ToPort"))


def ensure_security_group(
    ec2: Any,
    region: str,
    vpc_id: str,
    name: str,
    cluster_name: str,
    ports: tuple[str, ...],
    *,
    managed: bool,
) -> tuple[str, bool]:
    """The id of security group ``name`` in the VPC, made if missing, with SSH, ``ports`` and
    traffic between the cluster's nodes open; and whether this call made it. A group Styx makes
    for one cluster (``managed``) is tagged with the cluster so ``terminate`` deletes it; a
    configured group made here is tagged as shared and kept."""
    wanted = parse_ports(ports)
    with translated(region, action=f"setting up security group {name}"):
        filters = [
            {"Name": "group-name", "Values": [name]},
            {"Name": "vpc-id", "Values": [vpc_id]},
        ]
        found = ec2.describe_security_groups(Filters=filters)["SecurityGroups"]
        if found:
            group = found[0]
            have = {_rule_key(r) for r in group.get("IpPermissions", [])}
            missing = [
                r for r in _permissions(group["GroupId"], wanted) if _rule_key(r) not in have
            ]
            if missing:
                _authorize(ec2, group["GroupId"], missing)
            return str(group["GroupId"]), False
        tags = [{"Key": MANAGED_TAG, "Value": "true" if managed else "shared"}]
        if managed:
            tags.append({"Key": CLUSTER_TAG, "Value": cluster_name})
        try:
            group_id = ec2.create_security_group(
                GroupName=name,
                Description=f"Styx cluster {cluster_name}" if managed else "Styx clusters",
                VpcId=vpc_id,
                TagSpecifications=[{"ResourceType": "security-group", "Tags": tags}],
            )["GroupId"]
        except Exception as exc:
            if error_code(exc) != "InvalidGroup.Duplicate":
                raise
            # Another launch made it just now: use theirs.
            return ensure_security_group(
                ec2, region, vpc_id, name, cluster_name, ports, managed=managed
            )
        _authorize(ec2, group_id, _permissions(group_id, wanted))
        return str(group_id), True


def _authorize(ec2: Any, group_id: str, rules: list[dict[str, Any]]) -> None:
    try:
        ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=rules)
    except Exception as exc:
        if error_code(exc) != "InvalidPermission.Duplicate":
            raise


def find_cluster_groups(ec2: Any, region: str, cluster_name: str) -> list[str]:
    """Ids of the security groups Styx made for this cluster (by tag)."""
    with translated(region, action="looking up the cluster's security groups"):
        found = ec2.describe_security_groups(
            Filters=[
                {"Name": f"tag:{CLUSTER_TAG}", "Values": [cluster_name]},
                {"Name": f"tag:{MANAGED_TAG}", "Values": ["true"]},
            ]
        )["SecurityGroups"]
    return [str(g["GroupId"]) for g in found]


def delete_security_group(ec2: Any, region: str, group_id: str, *, timeout: float = 120) -> None:
    """Delete a group; gone already is fine. AWS refuses (DependencyViolation) while network
    interfaces of terminated instances linger, so that is retried until ``timeout``."""
    deadline = time.monotonic() + timeout
    delay = 0.5
    with translated(region, action=f"deleting security group {group_id}"):
        while True:
            try:
                ec2.delete_security_group(GroupId=group_id)
                return
            except Exception as exc:
                code = error_code(exc)
                if code in ("InvalidGroup.NotFound", "InvalidGroupId.NotFound"):
                    return
                if code != "DependencyViolation" or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
