"""The GCE stand-in (tests/testworld/gce.py) through the real google-cloud-compute client, and
the real hosts behind its instances (tests/testworld/gce_hosts.py; root and sshd only)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

compute_v1 = pytest.importorskip(
    "google.cloud.compute_v1", reason="google-cloud-compute is not installed"
)
gexc = pytest.importorskip("google.api_core.exceptions")
ga_exceptions = pytest.importorskip("google.auth.exceptions")

from testworld.gce import (  # noqa: E402
    PROJECT,
    GCEServer,
    block_google_endpoints,
    compile_filter,
    local_credentials,
)

P = PROJECT
ZONE = "us-central1-a"
ZONE_B = "us-central1-b"
EAST = "us-east1-b"
DONE = compute_v1.Operation.Status.DONE
RUNNING = compute_v1.Operation.Status.RUNNING


@pytest.fixture(scope="module")
def _server() -> Iterator[GCEServer]:
    with GCEServer() as server:
        yield server


@pytest.fixture
def gce(_server: GCEServer) -> Iterator[GCEServer]:
    """A clean stand-in; no test can reach Google (a lookup of *.googleapis.com fails)."""
    _server.reset()
    with block_google_endpoints() as tried:
        yield _server
    _server.wait_timeout = 120.0
    assert tried == [], f"the client tried to reach {tried}"


class Clients:
    def __init__(self, gce: GCEServer) -> None:
        self.instances = gce.client("Instances")
        self.zone_ops = gce.client("ZoneOperations")
        self.global_ops = gce.client("GlobalOperations")
        self.region_ops = gce.client("RegionOperations")
        self.firewalls = gce.client("Firewalls")
        self.networks = gce.client("Networks")
        self.subnetworks = gce.client("Subnetworks")
        self.disks = gce.client("Disks")
        self.images = gce.client("Images")
        self.zones = gce.client("Zones")
        self.regions = gce.client("Regions")
        self.machine_types = gce.client("MachineTypes")
        self.accelerator_types = gce.client("AcceleratorTypes")
        self.projects = gce.client("Projects")

    def wait_zone(self, op: Any, zone: str = ZONE) -> Any:
        """What a provider must do: wait through the endpoint, not op.result()."""
        while True:
            got = self.zone_ops.wait(project=P, zone=zone, operation=op.name)
            if got.status == DONE:
                return got

    def wait_global(self, op: Any) -> Any:
        while True:
            got = self.global_ops.wait(project=P, operation=op.name)
            if got.status == DONE:
                return got

    def wait_region(self, op: Any, region: str) -> Any:
        while True:
            got = self.region_ops.wait(project=P, region=region, operation=op.name)
            if got.status == DONE:
                return got


@pytest.fixture
def c(gce: GCEServer) -> Clients:
    return Clients(gce)


def instance(
    name: str,
    zone: str = ZONE,
    *,
    machine_type: str = "n2-standard-2",
    spot: bool = False,
    labels: dict[str, str] | None = None,
    keys: str = "root:ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJvZ3VzLWtleS1mb3ItdGVzdHM= test",
    subnetwork: str | None = None,
    network: str = "global/networks/default",
    accelerator: tuple[str, int] | None = None,
    on_host_maintenance: str | None = None,
    termination_action: str | None = None,
    external_ip: bool = False,
    image: str = "projects/debian-cloud/global/images/family/debian-12",
) -> Any:
    sched = compute_v1.Scheduling()
    if spot:
        sched.provisioning_model = "SPOT"
        sched.instance_termination_action = termination_action or "STOP"
    if on_host_maintenance:
        sched.on_host_maintenance = on_host_maintenance
    nic = compute_v1.NetworkInterface(network=network)
    if subnetwork:
        nic.subnetwork = subnetwork
    if external_ip:
        nic.access_configs = [compute_v1.AccessConfig(name="External NAT", type_="ONE_TO_ONE_NAT")]
    inst = compute_v1.Instance(
        name=name,
        machine_type=f"zones/{zone}/machineTypes/{machine_type}",
        disks=[
            compute_v1.AttachedDisk(
                boot=True,
                auto_delete=True,
                initialize_params=compute_v1.AttachedDiskInitializeParams(
                    disk_size_gb=20,
                    disk_type=f"zones/{zone}/diskTypes/pd-balanced",
                    source_image=image,
                ),
            )
        ],
        network_interfaces=[nic],
        labels=labels or {},
        metadata=compute_v1.Metadata(items=[compute_v1.Items(key="ssh-keys", value=keys)]),
        scheduling=sched,
        service_accounts=[
            compute_v1.ServiceAccount(
                email="default", scopes=["https://www.googleapis.com/auth/cloud-platform"]
            )
        ],
        tags=compute_v1.Tags(items=["styx"]),
    )
    if accelerator:
        inst.guest_accelerators = [
            compute_v1.AcceleratorConfig(
                accelerator_type=f"zones/{zone}/acceleratorTypes/{accelerator[0]}",
                accelerator_count=accelerator[1],
            )
        ]
    return inst


def names(pager: Any) -> list[str]:
    return sorted(i.name for i in pager)


# --- the life cycle -------------------------------------------------------------------------------


def test_lifecycle_through_the_client(gce: GCEServer, c: Clients) -> None:
    calls = gce.mark()
    # network, subnet, firewall (global and regional operations)
    net = compute_v1.Network(name="styx-net", auto_create_subnetworks=False)
    assert c.wait_global(c.networks.insert(project=P, network_resource=net)).error.errors == []
    sub = compute_v1.Subnetwork(
        name="styx-sub", network="global/networks/styx-net", ip_cidr_range="198.18.99.0/24"
    )
    done = c.wait_region(
        c.subnetworks.insert(project=P, region="us-central1", subnetwork_resource=sub),
        "us-central1",
    )
    assert done.status == DONE and not done.error.errors
    got_sub = c.subnetworks.get(project=P, region="us-central1", subnetwork="styx-sub")
    assert got_sub.gateway_address == "198.18.99.1" and got_sub.network.endswith(
        "/global/networks/styx-net"
    )
    fw = compute_v1.Firewall(
        name="styx-ssh",
        network="global/networks/styx-net",
        allowed=[compute_v1.Allowed(I_p_protocol="tcp", ports=["22"])],
        source_ranges=["0.0.0.0/0"],
        target_tags=["styx"],
    )
    fw_op = c.firewalls.insert(project=P, firewall_resource=fw)
    assert c.wait_global(fw_op).status == DONE
    assert names(
        c.firewalls.list(
            request=compute_v1.ListFirewallsRequest(project=P, filter='name = "styx-*"')
        )
    ) == ["styx-ssh"]
    assert c.firewalls.get(project=P, firewall="styx-ssh").allowed[0].ports == ["22"]
    assert c.images.get_from_family(project="debian-cloud", family="debian-12").name.startswith(
        "debian-12-bookworm-v"
    )
    assert c.machine_types.get(project=P, zone=ZONE, machine_type="n2-standard-2").guest_cpus == 2

    # two instances: one spot in the custom subnet, one standard in the default network
    gce.slow(ops=0.6, op_types=["insert"])
    a = instance(
        "styx-a",
        labels={"styx-cluster": "c1", "role": "head"},
        spot=True,
        subnetwork="regions/us-central1/subnetworks/styx-sub",
        network="global/networks/styx-net",
    )
    b = instance("styx-b", labels={"styx-cluster": "c1", "role": "worker"})
    t0 = time.monotonic()
    op_a = c.instances.insert(project=P, zone=ZONE, instance_resource=a)
    op_b = c.instances.insert(project=P, zone=ZONE, instance_resource=b)
    assert op_a.status == RUNNING  # still running: wait through the endpoint
    assert c.instances.get(project=P, zone=ZONE, instance="styx-a").status in (
        "PROVISIONING",
        "STAGING",
    )
    assert c.wait_zone(op_a).error.errors == [] and c.wait_zone(op_b).error.errors == []
    assert time.monotonic() - t0 >= 0.5
    got_a = c.instances.get(project=P, zone=ZONE, instance="styx-a")
    got_b = c.instances.get(project=P, zone=ZONE, instance="styx-b")
    assert (got_a.status, got_b.status) == ("RUNNING", "RUNNING")
    ip_a, ip_b = got_a.network_interfaces[0].network_i_p, got_b.network_interfaces[0].network_i_p
    assert ip_a == "198.18.99.2" and ip_b == "198.18.96.2"
    assert not got_a.network_interfaces[0].access_configs  # no external IP unless asked
    assert (
        got_a.scheduling.provisioning_model == "SPOT"
        and got_a.scheduling.automatic_restart is False
    )
    assert got_a.metadata.items[0].value.startswith("root:ssh-ed25519 ")
    assert got_a.id > 0 and got_a.self_link.endswith(f"/projects/{P}/zones/{ZONE}/instances/styx-a")
    assert got_a.service_accounts[0].email.endswith("-compute@developer.gserviceaccount.com")

    # list with a filter, aggregated list
    flt = 'labels.styx-cluster = "c1" AND labels.role = "head"'
    assert names(
        c.instances.list(request=compute_v1.ListInstancesRequest(project=P, zone=ZONE, filter=flt))
    ) == ["styx-a"]
    agg = dict(
        c.instances.aggregated_list(
            request=compute_v1.AggregatedListInstancesRequest(
                project=P, filter='labels.styx-cluster = "c1"'
            )
        )
    )
    assert sorted(i.name for i in agg[f"zones/{ZONE}"].instances) == ["styx-a", "styx-b"]
    assert agg[f"zones/{EAST}"].warning.code == "NO_RESULTS_ON_PAGE"

    # setLabels with the fingerprint; a stale one is refused
    req = compute_v1.InstancesSetLabelsRequest(
        labels={"styx-cluster": "c1", "role": "head", "x": "1"},
        label_fingerprint=got_a.label_fingerprint,
    )
    assert (
        c.wait_zone(
            c.instances.set_labels(
                project=P, zone=ZONE, instance="styx-a", instances_set_labels_request_resource=req
            )
        ).status
        == DONE
    )
    assert c.instances.get(project=P, zone=ZONE, instance="styx-a").labels["x"] == "1"
    with pytest.raises(gexc.PreconditionFailed) as stale:
        c.instances.set_labels(
            project=P, zone=ZONE, instance="styx-a", instances_set_labels_request_resource=req
        )
    assert stale.value.errors[0]["reason"] == "conditionNotMet"

    # stop and start (slow) keep the internal IP; TERMINATED is GCE's stopped
    gce.slow(ops=0.4)
    stop = c.instances.stop(project=P, zone=ZONE, instance="styx-a")
    assert c.instances.get(project=P, zone=ZONE, instance="styx-a").status == "STOPPING"
    c.wait_zone(stop)
    assert c.instances.get(project=P, zone=ZONE, instance="styx-a").status == "TERMINATED"
    c.wait_zone(c.instances.start(project=P, zone=ZONE, instance="styx-a"))
    again = c.instances.get(project=P, zone=ZONE, instance="styx-a")
    assert again.status == "RUNNING" and again.network_interfaces[0].network_i_p == ip_a
    gce.clear_faults()

    # delete: the instance and its autoDelete boot disk go; the firewall goes
    assert {d.name for d in c.disks.list(project=P, zone=ZONE)} == {"styx-a", "styx-b"}
    for name in ("styx-a", "styx-b"):
        assert c.wait_zone(c.instances.delete(project=P, zone=ZONE, instance=name)).status == DONE
    assert names(c.instances.list(project=P, zone=ZONE)) == []
    assert list(c.disks.list(project=P, zone=ZONE)) == []
    with pytest.raises(gexc.NotFound):
        c.instances.get(project=P, zone=ZONE, instance="styx-a")
    assert c.wait_global(c.firewalls.delete(project=P, firewall="styx-ssh")).status == DONE
    with pytest.raises(gexc.NotFound):
        c.firewalls.get(project=P, firewall="styx-ssh")
    assert len(gce.requests_since(calls)) >= 20


def test_operations_wait_returns_at_its_timeout_and_op_result_is_the_trap(
    gce: GCEServer, c: Clients
) -> None:
    gce.slow(ops=1.2)
    gce.wait_timeout = 0.3
    op = c.instances.insert(project=P, zone=ZONE, instance_resource=instance("slow-1"))
    t0 = time.monotonic()
    got = c.zone_ops.wait(project=P, zone=ZONE, operation=op.name)
    assert got.status == RUNNING and 0.25 < time.monotonic() - t0 < 1.5  # as the real ~2 min
    assert int(got.id) > 0 and got.name.startswith("operation-")
    assert c.zone_ops.get(project=P, zone=ZONE, operation=op.name).status == RUNNING
    # The trap: the client's own poller ignores the endpoint and goes to compute.googleapis.com.
    import requests

    with block_google_endpoints() as tried, pytest.raises(requests.exceptions.ConnectionError):
        op.result(timeout=5)
    assert tried and all(t.endswith("googleapis.com") for t in tried)
    gce.wait_timeout = 10
    assert c.wait_zone(op).status == DONE
    # An operation that came back DONE is safe with result().
    gce.clear_faults()
    fast = c.instances.stop(project=P, zone=ZONE, instance="slow-1")
    assert fast.status == DONE and fast.result() is None
    # list, and global operations too
    ops = c.zone_ops.list(
        request=compute_v1.ListZoneOperationsRequest(
            project=P, zone=ZONE, filter='operationType = "stop"'
        )
    )
    assert [o.operation_type for o in ops] == ["stop"]
    fw = compute_v1.Firewall(
        name="fw-x",
        network="global/networks/default",
        allowed=[compute_v1.Allowed(I_p_protocol="tcp", ports=["22"])],
    )
    gop = c.firewalls.insert(project=P, firewall_resource=fw)
    assert c.global_ops.get(project=P, operation=gop.name).status == DONE


# --- faults ---------------------------------------------------------------------------------------


def test_stockout_in_a_zone_only_for_spot_or_a_type(gce: GCEServer, c: Clients) -> None:
    rule = gce.stockout(ZONE)
    op = c.instances.insert(project=P, zone=ZONE, instance_resource=instance("so-1"))
    done = c.wait_zone(op)
    err = done.error.errors[0]
    assert err.code == "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"
    assert f"'projects/{P}/zones/{ZONE}' does not have enough resources" in err.message
    assert err.error_details[0].error_info.reason == "resource_availability"
    assert err.error_details[0].error_info.metadatas["vmType"] == "n2-standard-2"
    assert done.http_error_status_code == 503 and rule.hits == 1
    with pytest.raises(gexc.ServiceUnavailable) as raised:  # result() on a DONE operation
        op.result()
    assert raised.value.errors[0].code == "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"
    with pytest.raises(gexc.NotFound):  # the instance was never made
        c.instances.get(project=P, zone=ZONE, instance="so-1")
    assert list(c.disks.list(project=P, zone=ZONE)) == []
    # another zone of the region still has room
    assert not c.wait_zone(
        c.instances.insert(project=P, zone=ZONE_B, instance_resource=instance("so-2", ZONE_B)),
        ZONE_B,
    ).error.errors
    gce.clear_faults()

    gce.stockout([ZONE, ZONE_B], spot=True, code="ZONE_RESOURCE_POOL_EXHAUSTED")
    spot = c.wait_zone(
        c.instances.insert(project=P, zone=ZONE, instance_resource=instance("so-3", spot=True))
    )
    assert spot.error.errors[0].code == "ZONE_RESOURCE_POOL_EXHAUSTED"
    assert "Try a different zone, or try again later." in spot.error.errors[0].message
    assert not c.wait_zone(
        c.instances.insert(project=P, zone=ZONE, instance_resource=instance("so-4"))
    ).error.errors
    gce.clear_faults()

    gce.stockout(machine_type="a2-*", count=1)
    a2 = instance("so-5", machine_type="a2-highgpu-1g", on_host_maintenance="TERMINATE")
    assert (
        c.wait_zone(c.instances.insert(project=P, zone=ZONE, instance_resource=a2))
        .error.errors[0]
        .code.startswith("ZONE_RESOURCE_POOL_EXHAUSTED")
    )
    assert not c.wait_zone(
        c.instances.insert(project=P, zone=ZONE, instance_resource=a2)
    ).error.errors  # count=1
    # a start can hit a stockout too
    c.wait_zone(c.instances.stop(project=P, zone=ZONE, instance="so-4"))
    gce.stockout(ZONE, on=["start"])
    start = c.wait_zone(c.instances.start(project=P, zone=ZONE, instance="so-4"))
    assert start.error.errors[0].code == "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"
    assert c.instances.get(project=P, zone=ZONE, instance="so-4").status == "TERMINATED"


def test_quota_in_the_operation_or_as_the_answer(gce: GCEServer, c: Clients) -> None:
    gce.set_quota("us-central1", "N2_CPUS", 3)
    assert not c.wait_zone(
        c.instances.insert(project=P, zone=ZONE, instance_resource=instance("q-1"))
    ).error.errors
    over = c.wait_zone(c.instances.insert(project=P, zone=ZONE, instance_resource=instance("q-2")))
    err = over.error.errors[0]
    assert (err.code, err.message) == (
        "QUOTA_EXCEEDED",
        "Quota 'N2_CPUS' exceeded.  Limit: 3.0 in region us-central1.",
    )
    assert err.error_details[0].quota_info.metric_name == "compute.googleapis.com/n2_cpus"
    assert err.error_details[0].quota_info.dimensions["region"] == "us-central1"
    assert over.http_error_status_code == 403
    region = c.regions.get(project=P, region="us-central1")
    n2 = next(q for q in region.quotas if q.metric == "N2_CPUS")
    assert (n2.limit, n2.usage) == (3.0, 2.0)

    gce.set_quota("us-central1", "NVIDIA_T4_GPUS", 0, mode="http")
    t4 = instance(
        "q-3",
        machine_type="n1-standard-4",
        accelerator=("nvidia-tesla-t4", 1),
        on_host_maintenance="TERMINATE",
    )
    with pytest.raises(gexc.Forbidden) as raised:
        c.instances.insert(project=P, zone=ZONE, instance_resource=t4)
    assert raised.value.errors[0]["reason"] == "quotaExceeded"
    assert raised.value.errors[0]["domain"] == "usageLimits"
    assert (
        "Quota 'NVIDIA_T4_GPUS' exceeded.  Limit: 0.0 in region us-central1."
        in raised.value.message
    )
    # spot GPUs count against the PREEMPTIBLE_ quota
    spot_t4 = instance(
        "q-4", machine_type="n1-standard-4", accelerator=("nvidia-tesla-t4", 1), spot=True
    )
    assert not c.wait_zone(
        c.instances.insert(project=P, zone=ZONE, instance_resource=spot_t4)
    ).error.errors
    gce.set_quota("global", "GPUS_ALL_REGIONS", 1)
    t4b = instance(
        "q-5", EAST, machine_type="n1-standard-4", accelerator=("nvidia-tesla-t4", 1), spot=True
    )
    glob = c.wait_zone(c.instances.insert(project=P, zone=EAST, instance_resource=t4b), EAST)
    assert (
        glob.error.errors[0].message == "Quota 'GPUS_ALL_REGIONS' exceeded.  Limit: 1.0 globally."
    )


def test_auth_failures(gce: GCEServer, c: Clients) -> None:
    gce.auth_failure("unauthenticated")
    creds = local_credentials()
    with pytest.raises(gexc.Unauthorized) as raised:
        gce.client("Instances", creds).get(project=P, zone=ZONE, instance="x")
    assert raised.value.code == 401 and raised.value.reason == "ACCESS_TOKEN_EXPIRED"
    assert raised.value.errors[0]["reason"] == "authError" and creds.refreshes == 2
    # anonymous credentials cannot refresh: google-auth raises before the client does
    with pytest.raises(ga_exceptions.InvalidOperation):
        c.instances.get(project=P, zone=ZONE, instance="x")
    gce.auth_failure("forbidden")
    with pytest.raises(gexc.Forbidden) as forbidden:
        c.instances.insert(project=P, zone=ZONE, instance_resource=instance("x"))
    assert forbidden.value.reason == "IAM_PERMISSION_DENIED"
    assert forbidden.value.errors[0]["reason"] == "forbidden"
    assert "Required 'compute.instances.insert' permission" in forbidden.value.message
    gce.auth_failure("disabled")
    with pytest.raises(gexc.Forbidden) as disabled:
        c.zones.list(project=P)
    assert (
        disabled.value.reason == "SERVICE_DISABLED"
        and disabled.value.errors[0]["reason"] == "accessNotConfigured"
    )
    gce.auth_failure(None)
    # a revoked login fails in google-auth, before any request
    with pytest.raises(ga_exceptions.RefreshError):
        gce.client("Instances", local_credentials(fail_refresh=True)).get(
            project=P, zone=ZONE, instance="x"
        )
    assert len(names(c.zones.list(project=P))) == 10


def test_request_id_makes_a_retried_insert_idempotent(gce: GCEServer, c: Clients) -> None:
    req = compute_v1.InsertInstanceRequest(
        project=P,
        zone=ZONE,
        instance_resource=instance("r-1"),
        request_id="5a6b0a7e-0d1c-4a5e-9a3c-0f1e2d3c4b5a",
    )
    first = c.instances.insert(request=req)
    again = c.instances.insert(request=req)  # the same requestId: the same operation, no 409
    assert again.name == first.name
    with pytest.raises(gexc.Conflict):
        c.instances.insert(project=P, zone=ZONE, instance_resource=instance("r-1"))


def test_host_helpers_without_hosts() -> None:
    from testworld.gce_hosts import GceSlot, _metadata_keys, _on_link

    keys, block = _metadata_keys(
        {
            "items": [
                {"key": "ssh-keys", "value": "styx:ssh-ed25519 AAAA a\nroot:ssh-rsa BBBB b"},
                {"key": "block-project-ssh-keys", "value": "TRUE"},
            ]
        }
    )
    assert keys == ["ssh-ed25519 AAAA a", "ssh-rsa BBBB b"] and block
    assert _on_link("198.18.96.0/24", ["198.18.96.0/24", "198.18.97.0/24", "198.18.98.0/24"]) == 22
    assert _on_link("198.18.99.0/24", []) == 24
    slot = GceSlot(3)
    slot.slot = 3
    assert (slot.bridge, slot.netns_prefix, slot.veth_prefix) == ("styxgce3", "styx-g3h", "vg3h")
    assert (
        str(slot.network) == "198.18.120.0/21"
        and slot.regions()["us-central1"] == "198.18.120.0/24"
    )


def test_transient_503_and_request_delay(gce: GCEServer, c: Clients) -> None:
    rule = gce.fail_next(1, method="POST", path="/instances$")
    with pytest.raises(gexc.ServiceUnavailable) as raised:  # mutations are not retried
        c.instances.insert(project=P, zone=ZONE, instance_resource=instance("t-1"))
    assert raised.value.errors[0]["reason"] == "backendError" and rule.hits == 1
    c.instances.insert(project=P, zone=ZONE, instance_resource=instance("t-1"))
    gets = gce.fail_next(2, method="GET")
    assert c.instances.get(project=P, zone=ZONE, instance="t-1").status == "RUNNING"  # retried
    assert gets.hits == 2
    gce.fail_next(1, status=429)
    with pytest.raises(gexc.TooManyRequests):
        c.instances.stop(project=P, zone=ZONE, instance="t-1")
    gce.slow(requests=0.2, path="/zones$")
    t0 = time.monotonic()
    list(c.zones.list(project=P))
    assert time.monotonic() - t0 >= 0.2


def test_preemption(gce: GCEServer, c: Clients) -> None:
    c.wait_zone(
        c.instances.insert(project=P, zone=ZONE, instance_resource=instance("sp-1", spot=True))
    )
    c.wait_zone(
        c.instances.insert(
            project=P,
            zone=ZONE,
            instance_resource=instance("sp-2", spot=True, termination_action="DELETE"),
        )
    )
    c.wait_zone(c.instances.insert(project=P, zone=ZONE, instance_resource=instance("std-1")))
    with pytest.raises(ValueError):
        gce.preempt("std-1")
    gce.preempt("sp-1")
    gce.preempt("sp-2")
    got = c.instances.get(project=P, zone=ZONE, instance="sp-1")
    assert got.status == "TERMINATED" and got.network_interfaces[0].network_i_p
    with pytest.raises(gexc.NotFound):
        c.instances.get(project=P, zone=ZONE, instance="sp-2")
    assert {d.name for d in c.disks.list(project=P, zone=ZONE)} == {"sp-1", "std-1"}
    flt = 'operationType = "compute.instances.preempted"'
    ops = list(
        c.zone_ops.list(
            request=compute_v1.ListZoneOperationsRequest(project=P, zone=ZONE, filter=flt)
        )
    )
    assert sorted(o.target_link.rsplit("/", 1)[-1] for o in ops) == ["sp-1", "sp-2"]
    assert all(o.status == DONE and o.status_message == "Instance was preempted." for o in ops)
    agg = dict(
        c.global_ops.aggregated_list(
            request=compute_v1.AggregatedListGlobalOperationsRequest(project=P, filter=flt)
        )
    )
    assert len(agg[f"zones/{ZONE}"].operations) == 2
    # a preempted (TERMINATED) spot instance starts again
    assert not c.wait_zone(c.instances.start(project=P, zone=ZONE, instance="sp-1")).error.errors


# --- details --------------------------------------------------------------------------------------


def test_filters() -> None:
    inst = {
        "name": "styx-a",
        "status": "RUNNING",
        "labels": {"styx-cluster": "c1", "role": "head"},
        "scheduling": {"automaticRestart": False, "provisioningModel": "SPOT"},
        "tags": {"items": ["a", "b"]},
        "networkInterfaces": [{"networkIP": "198.18.96.2"}],
        "guestCpus": 8,
    }
    yes = [
        'labels.styx-cluster = "c1"',
        'labels.styx-cluster = "c1" AND status = RUNNING',
        '(labels.styx-cluster = "c1") (status = "RUNNING")',
        'status = "TERMINATED" OR labels.role = head',
        "labels.role:*",
        "NOT labels.owner:*",
        "-labels.owner:*",
        "name != other",
        'name = "styx-*"',
        "scheduling.automaticRestart = false",
        "scheduling.provisioningModel = SPOT",
        "tags.items = b",
        'networkInterfaces.networkIP = "198.18.96.2"',
        "guestCpus > 4",
        "name eq styx-.*",
        "(name eq 'styx-a') (status eq RUN.*)",
        "",
    ]
    no = [
        'labels.styx-cluster = "c2"',
        "labels.owner:*",
        "status != RUNNING",
        "name ne styx-.*",
        "guestCpus <= 4",
    ]
    for expr in yes:
        assert compile_filter(expr)(inst), expr
    for expr in no:
        assert not compile_filter(expr)(inst), expr
    from testworld.gce import ApiError

    for bad in (
        "labels.x ~ y",
        "status in (A, B)",
        "name =",
        "(status = RUNNING",
        "name eq a AND status = RUNNING",
        "= x",
    ):
        with pytest.raises(ApiError) as raised:
            compile_filter(bad)
        assert raised.value.status == 400, bad


def test_validation_errors(gce: GCEServer, c: Clients) -> None:
    with pytest.raises(gexc.BadRequest) as migrate:  # a GPU needs onHostMaintenance=TERMINATE
        c.instances.insert(
            project=P, zone=ZONE, instance_resource=instance("v-1", machine_type="g2-standard-4")
        )
    assert (
        "Instances with guest accelerators do not support live migration." in migrate.value.message
    )
    bare = instance("v-2")
    bare.machine_type = "n2-standard-2"
    with pytest.raises(gexc.BadRequest):
        c.instances.insert(project=P, zone=ZONE, instance_resource=bare)
    with pytest.raises(gexc.BadRequest, match="does not exist in zone"):
        c.instances.insert(
            project=P, zone=ZONE, instance_resource=instance("v-3", machine_type="n9-huge-1")
        )
    with pytest.raises(gexc.BadRequest, match="image resource cannot be found"):
        c.instances.insert(
            project=P,
            zone=ZONE,
            instance_resource=instance(
                "v-4", image="projects/debian-cloud/global/images/family/nope"
            ),
        )
    with pytest.raises(gexc.BadRequest, match="Unknown zone"):
        list(c.instances.list(project=P, zone="mars-north1-a"))
    with pytest.raises(gexc.NotFound):
        list(c.instances.list(project="someone-else", zone=ZONE))
    c.instances.insert(project=P, zone=ZONE, instance_resource=instance("v-5"))
    with pytest.raises(gexc.Conflict):
        c.instances.insert(project=P, zone=ZONE, instance_resource=instance("v-5"))
    sub = compute_v1.Subnetwork(
        name="outside",
        network="global/networks/default",
        ip_cidr_range="127.18.0.0/24",  # outside the test net, never contacted
    )
    with pytest.raises(gexc.BadRequest, match=r"198\.18\.0\.0/15"):
        c.subnetworks.insert(project=P, region="us-central1", subnetwork_resource=sub)
    with pytest.raises(gexc.BadRequest, match="Invalid list filter"):
        list(
            c.instances.list(
                request=compute_v1.ListInstancesRequest(
                    project=P, zone=ZONE, filter="status in (A)"
                )
            )
        )
    # a catalog image the SkyPilot-style defaults use exists
    assert (
        c.images.get(project="sky-dev-465", image="skypilot-gcp-cpu-ubuntu-241030").status
        == "READY"
    )
    # an external IP only when asked, never a public address
    c.instances.insert(project=P, zone=ZONE, instance_resource=instance("v-6", external_ip=True))
    nat = (
        c.instances.get(project=P, zone=ZONE, instance="v-6")
        .network_interfaces[0]
        .access_configs[0]
        .nat_i_p
    )
    assert nat.startswith("198.19.")


def test_metadata_tags_reset_and_project_metadata(gce: GCEServer, c: Clients) -> None:
    c.instances.insert(project=P, zone=ZONE, instance_resource=instance("m-1"))
    got = c.instances.get(project=P, zone=ZONE, instance="m-1")
    md = compute_v1.Metadata(
        fingerprint=got.metadata.fingerprint,
        items=[compute_v1.Items(key="ssh-keys", value="root:ssh-ed25519 AAAA new")],
    )
    assert (
        c.wait_zone(
            c.instances.set_metadata(project=P, zone=ZONE, instance="m-1", metadata_resource=md)
        ).status
        == DONE
    )
    assert (
        c.instances.get(project=P, zone=ZONE, instance="m-1")
        .metadata.items[0]
        .value.endswith("new")
    )
    with pytest.raises(gexc.PreconditionFailed):
        c.instances.set_metadata(project=P, zone=ZONE, instance="m-1", metadata_resource=md)
    tags = compute_v1.Tags(items=["a", "b"], fingerprint=got.tags.fingerprint)
    c.wait_zone(c.instances.set_tags(project=P, zone=ZONE, instance="m-1", tags_resource=tags))
    assert list(c.instances.get(project=P, zone=ZONE, instance="m-1").tags.items) == ["a", "b"]
    assert c.wait_zone(c.instances.reset(project=P, zone=ZONE, instance="m-1")).status == DONE
    project = c.projects.get(project=P)
    pm = compute_v1.Metadata(
        fingerprint=project.common_instance_metadata.fingerprint,
        items=[compute_v1.Items(key="ssh-keys", value="root:ssh-ed25519 AAAA proj")],
    )
    c.wait_global(c.projects.set_common_instance_metadata(project=P, metadata_resource=pm))
    assert gce.project_ssh_keys() == ["root:ssh-ed25519 AAAA proj"]
    assert any(q.metric == "GPUS_ALL_REGIONS" for q in c.projects.get(project=P).quotas)


def test_pagination_and_lookups(gce: GCEServer, c: Clients) -> None:
    for i in range(5):
        c.instances.insert(project=P, zone=ZONE, instance_resource=instance(f"p-{i}"))
    pager = c.instances.list(
        request=compute_v1.ListInstancesRequest(project=P, zone=ZONE, max_results=2)
    )
    assert names(pager) == [f"p-{i}" for i in range(5)]
    assert len(gce.requests("GET", r"/zones/us-central1-a/instances$")) == 3
    assert len(list(c.zones.list(project=P))) == 10
    region = c.regions.get(project=P, region="us-east1")
    assert sorted(z.rsplit("/", 1)[-1] for z in region.zones) == [
        "us-east1-b",
        "us-east1-c",
        "us-east1-d",
    ]
    a2 = c.machine_types.get(project=P, zone=ZONE, machine_type="a2-highgpu-1g")
    assert a2.accelerators[0].guest_accelerator_type == "nvidia-tesla-a100"
    accels = {a.name for a in c.accelerator_types.list(project=P, zone=ZONE)}
    assert {"nvidia-tesla-t4", "nvidia-tesla-a100"} <= accels
    assert (
        c.images.get_from_family(project="ubuntu-os-cloud", family="ubuntu-2204-lts").architecture
        == "X86_64"
    )
    assert c.networks.get(project=P, network="default").auto_create_subnetworks is True
    subs = {s.name: s.ip_cidr_range for s in c.subnetworks.list(project=P, region="europe-west4")}
    assert subs == {"default": "198.18.98.0/24"}


def test_json_is_the_real_apis(gce: GCEServer, c: Clients) -> None:
    """Every answer parses strictly (no unknown field) into the client's message types."""
    c.instances.insert(
        project=P, zone=ZONE, instance_resource=instance("j-1", spot=True, external_ip=True)
    )
    gce.stockout(ZONE_B)
    c.instances.insert(project=P, zone=ZONE_B, instance_resource=instance("j-2", ZONE_B))
    gce.set_quota("us-central1", "CPUS", 0)
    c.instances.insert(
        project=P, zone=ZONE, instance_resource=instance("j-3", machine_type="e2-medium")
    )
    gce.preempt("j-1")
    base = f"{gce.url}/compute/v1/projects/{P}"
    checks = {
        f"/zones/{ZONE}/instances/j-1": compute_v1.Instance,
        f"/zones/{ZONE}/instances": compute_v1.InstanceList,
        "/aggregated/instances": compute_v1.InstanceAggregatedList,
        f"/zones/{ZONE}/disks/j-1": compute_v1.Disk,
        "/aggregated/disks": compute_v1.DiskAggregatedList,
        f"/zones/{ZONE}/operations": compute_v1.OperationList,
        f"/zones/{ZONE_B}/operations": compute_v1.OperationList,
        "/aggregated/operations": compute_v1.OperationAggregatedList,
        "/global/firewalls": compute_v1.FirewallList,
        "/global/networks/default": compute_v1.Network,
        "/regions/us-central1/subnetworks/default": compute_v1.Subnetwork,
        "/regions/us-central1": compute_v1.Region,
        "/zones": compute_v1.ZoneList,
        f"/zones/{ZONE}/machineTypes/n2-standard-2": compute_v1.MachineType,
        f"/zones/{ZONE}/acceleratorTypes": compute_v1.AcceleratorTypeList,
        f"/zones/{ZONE}/diskTypes": compute_v1.DiskTypeList,
        "": compute_v1.Project,
    }
    for path, cls in checks.items():
        with urllib.request.urlopen(base + path) as resp:
            cls.from_json(resp.read(), ignore_unknown_fields=False)
    url = f"{gce.url}/compute/v1/projects/debian-cloud/global/images/family/debian-12"
    with urllib.request.urlopen(url) as resp:
        compute_v1.Image.from_json(resp.read(), ignore_unknown_fields=False)
    with urllib.request.urlopen(f"{base}/zones/{ZONE_B}/operations") as resp:
        body = json.loads(resp.read())
    assert (
        body["items"][0]["error"]["errors"][0]["code"]
        == "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"
    )


def test_request_log_and_busy_seconds(gce: GCEServer, c: Clients) -> None:
    n = gce.mark()
    gce.slow(requests=0.05)
    t0 = time.monotonic()
    list(c.zones.list(project=P))
    c.instances.insert(project=P, zone=ZONE, instance_resource=instance("b-1"))
    wall = time.monotonic() - t0
    log = gce.requests_since(n)
    assert [(e["method"], e["status"]) for e in log] == [("GET", 200), ("POST", 200)]
    assert all(e["duration"] >= 0.05 and e["start"] > 0 for e in log)
    assert 0.1 <= gce.busy_seconds(since=n) <= wall
    gce.reset()
    assert gce.requests() == [] and gce.instances() == {}


# --- real hosts (root, ip netns, sshd) ---------------------------------------------------------------


def _hosts_usable() -> str | None:
    from testworld.testbed import usable

    return usable()


def _port_open(ip: str, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((ip, 22), timeout=timeout):
            return True
    except OSError:
        return False


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[GCEServer, Any, Clients]]:
    why = _hosts_usable()
    if why:
        pytest.skip(f"no test hosts: {why}")
    from testworld.gce_hosts import gce_world

    with gce_world(tmp_path / "gce") as (server, hosts), block_google_endpoints() as tried:
        yield server, hosts, Clients(server)
        slot = hosts.slot
    assert tried == []
    assert slot.leftovers() == [], "namespaces or links left behind"


def test_hosts_follow_the_instances(world: tuple[GCEServer, Any, Clients], tmp_path: Path) -> None:
    server, hosts, c = world
    key = tmp_path / "user_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    pub = (tmp_path / "user_key.pub").read_text().strip()
    zone_a, zone_e = ZONE, EAST
    c.wait_zone(
        c.instances.insert(
            project=P, zone=zone_a, instance_resource=instance("h-a", keys=f"styx:{pub}", spot=True)
        )
    )
    c.wait_zone(
        c.instances.insert(
            project=P, zone=zone_e, instance_resource=instance("h-e", zone_e, keys=f"root:{pub}")
        ),
        zone_e,
    )
    ip_a = c.instances.get(project=P, zone=zone_a, instance="h-a").network_interfaces[0].network_i_p
    ip_e = c.instances.get(project=P, zone=zone_e, instance="h-e").network_interfaces[0].network_i_p
    up = hosts.wait_up(["h-a", "h-e"])
    assert up["h-a"].ip == ip_a and up["h-a"].boot_s is not None and up["h-a"].boot_s < 10
    # the metadata key logs in as root at the internal IP; hosts of one network see each other
    out = hosts.ssh(
        "h-a",
        f"hostname; echo x > /tmp/t; echo y > /root/r; timeout 2 bash -c '</dev/tcp/{ip_e}/22' && echo reach",
        key=key,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["h-a", "reach"]
    # stop: unreachable once the operation is DONE; start: same IP, /tmp wiped, /root kept
    c.wait_zone(c.instances.stop(project=P, zone=zone_a, instance="h-a"))
    assert not _port_open(ip_a) and hosts.pids("h-a") == []
    assert hosts.host("h-a").state == "stopped"
    c.wait_zone(c.instances.start(project=P, zone=zone_a, instance="h-a"))
    assert (
        c.instances.get(project=P, zone=zone_a, instance="h-a").network_interfaces[0].network_i_p
        == ip_a
    )
    hosts.wait_up(["h-a"])
    out = hosts.ssh("h-a", "test -e /tmp/t && echo kept; cat /root/r", key=key)
    assert out.returncode == 0 and out.stdout.split() == ["y"], out
    # preemption powers it off; a crash is a power cut the API does not see
    server.preempt("h-a")
    assert not _port_open(ip_a)
    hosts.crash("h-e")
    assert c.instances.get(project=P, zone=zone_e, instance="h-e").status == "RUNNING"
    assert not _port_open(ip_e)
    c.wait_zone(c.instances.reset(project=P, zone=zone_e, instance="h-e"), zone_e)
    hosts.wait_up(["h-e"])
    # delete leaves no namespace and no process
    netns = hosts.host("h-e").netns
    c.wait_zone(c.instances.delete(project=P, zone=zone_e, instance="h-e"), zone_e)
    c.wait_zone(c.instances.delete(project=P, zone=zone_a, instance="h-a"))
    from testworld.nshost import netns_names

    assert "h-e" not in hosts.hosts() and netns not in netns_names() and hosts.pids("h-e") == []
    assert hosts.errors == []
