"""The GCP provider's pure parts: errors by code, instance bodies, names and labels, images.

Operations and HTTP errors are the official client's own types (``compute_v1.Operation``,
``google.api_core.exceptions``), built here as GCE returns them."""

from __future__ import annotations

import pytest

from styx.errors import AuthFailed, FailoverScope, NoCapacity, QuotaExceeded, RemoteError, SpecError

compute_v1 = pytest.importorskip("google.cloud.compute_v1")
gx = pytest.importorskip("google.api_core.exceptions")

from styx.providers.gcp import errors, instances  # noqa: E402
from styx.providers.gcp.provider import _image  # noqa: E402
from styx.providers.gcp.settings import GCPSettings  # noqa: E402


def op_with(code: str, message: str = "m", status: int = 0, quota: dict | None = None):  # type: ignore[no-untyped-def]
    item = compute_v1.Errors(code=code, message=message)
    if quota is not None:
        item.error_details = [
            compute_v1.ErrorDetails(quota_info=compute_v1.QuotaExceededInfo(**quota))
        ]
    return compute_v1.Operation(
        name="operation-1", status="DONE", http_error_status_code=status,
        error=compute_v1.Error(errors=[item]),
    )  # fmt: skip


@pytest.mark.parametrize(
    "code", ["ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"]
)
def test_a_stockout_blocks_the_zone(code: str) -> None:
    err = errors.operation_error(op_with(code, "does not have enough resources"), region="us-central1",
                                 zone="us-central1-a", action="creating")  # fmt: skip
    assert isinstance(err, NoCapacity) and err.scope is FailoverScope.ZONE
    assert err.details["gcp_code"] == code and err.details["zone"] == "us-central1-a"


def test_quota_blocks_the_region_unless_it_is_the_projects() -> None:
    regional = op_with("QUOTA_EXCEEDED", "Quota 'CPUS' exceeded.", 403,
                       {"metric_name": "compute.googleapis.com/cpus", "limit_name": "CPUS-per-project-region",
                        "dimensions": {"region": "us-central1"}})  # fmt: skip
    err = errors.operation_error(regional, region="us-central1", zone="us-central1-a", action="x")
    assert isinstance(err, QuotaExceeded) and err.scope is FailoverScope.REGION
    bare = op_with("QUOTA_EXCEEDED", "Quota 'NVIDIA_A100_GPUS' exceeded.", 403)
    err = errors.operation_error(bare, region="us-central1", zone=None, action="x")
    assert isinstance(err, QuotaExceeded) and err.scope is FailoverScope.REGION
    everywhere = op_with("QUOTA_EXCEEDED", "Quota 'GPUS_ALL_REGIONS' exceeded.", 403,
                         {"metric_name": "compute.googleapis.com/gpus_all_regions",
                          "limit_name": "GPUS-ALL-REGIONS-per-project"})  # fmt: skip
    err = errors.operation_error(everywhere, region="us-central1", zone=None, action="x")
    assert isinstance(err, QuotaExceeded) and err.scope is FailoverScope.CLOUD


def test_a_done_operation_without_errors_is_no_error() -> None:
    assert (
        errors.operation_error(
            compute_v1.Operation(status="DONE"), region="r", zone=None, action="x"
        )
        is None
    )


@pytest.mark.parametrize(
    ("status", "reason", "kind", "scope"),
    [
        (401, "authError", AuthFailed, FailoverScope.CLOUD),
        (403, "forbidden", AuthFailed, FailoverScope.CLOUD),
        (403, "accessNotConfigured", AuthFailed, FailoverScope.CLOUD),
        (403, "quotaExceeded", QuotaExceeded, FailoverScope.REGION),
        (429, "rateLimitExceeded", RemoteError, None),
        (503, "backendError", RemoteError, None),
    ],
)
def test_http_errors_by_reason(
    status: int, reason: str, kind: type, scope: FailoverScope | None
) -> None:
    exc = gx.from_http_status(status, "the message", errors=[{"reason": reason, "message": "m"}])
    err = errors.translate(exc, region="us-east1", zone="us-east1-b", action="creating")
    assert type(err) is kind, err
    assert getattr(err, "scope", None) is scope
    if kind is RemoteError:
        assert err.details["retryable"] is True


def test_a_type_not_offered_in_the_zone_moves_to_the_next_zone() -> None:
    exc = gx.from_http_status(
        404, "acceleratorTypes/nvidia-l4 was not found", errors=[{"reason": "notFound"}]
    )
    err = errors.translate(exc, region="us-east1", zone="us-east1-b", action="creating")
    assert isinstance(err, NoCapacity) and err.scope is FailoverScope.ZONE


def test_the_message_text_decides_nothing() -> None:
    """A capacity-sounding message under an unknown code is not a stockout."""
    op = op_with("SOMETHING_NEW", "does not have enough resources available")
    err = errors.operation_error(op, region="r", zone="r-a", action="x")
    assert type(err) is RemoteError and err.code == "cloud-api-error"


def test_names_labels_and_tags_are_gce_safe() -> None:
    name = instances.instance_name("My_Cluster.2", 3, "ab12")
    assert name.startswith("my-cluster-2-") and name.endswith("ab12-3") and len(name) <= 63
    assert instances.instance_name("9lives", 0, "aa")[0].isalpha()
    assert instances.label_value("A" * 100) == "a" * 63
    a, b = instances.cluster_id("x-y"), instances.cluster_id("x_y")
    assert a != b and instances.label_value("x-y") == instances.label_value("x_y")
    assert instances.network_tag("c") == f"styx-{instances.cluster_id('c')}"
    assert (
        instances.cluster_filter("c") == f'labels.styx-cluster-id = "{instances.cluster_id("c")}"'
    )


def test_disk_types_by_tier_and_series() -> None:
    assert instances.disk_type("n2-standard-4", None) == "pd-balanced"
    assert instances.disk_type("n2-standard-4", "low") == "pd-standard"
    assert instances.disk_type("n2-standard-4", "high") == "pd-ssd"
    assert instances.disk_type("n2-standard-4", "best") == "pd-ssd"
    assert instances.disk_type("n4-standard-8", "medium") == "hyperdisk-balanced"
    assert instances.disk_type("c4-standard-8", "ultra") == "hyperdisk-extreme"
    with pytest.raises(SpecError):
        instances.disk_type("n2-standard-4", "gold")


def test_gpus_attach_only_to_types_without_their_own() -> None:
    assert instances.guest_accelerators("n1-standard-8", {"T4": 2}) == [("nvidia-tesla-t4", 2)]
    assert instances.guest_accelerators("a2-highgpu-1g", {"A100": 1}) == []
    assert instances.guest_accelerators("g2-standard-4", {"L4": 1}) == []
    assert instances.guest_accelerators("n2-standard-4", None) == []


def _body(**kw):  # type: ignore[no-untyped-def]
    args = dict(
        name="c-0", project="p", zone="us-central1-a", machine_type="n1-standard-8",
        image=instances.CPU_IMAGE, disk_size=100, disk_tier=None,
        network="global/networks/default", subnetwork="regions/us-central1/subnetworks/default",
        external_ip=False, labels={"styx-cluster": "c"}, tag="styx-abc",
        ssh_keys=instances.ssh_keys_item("gcpuser", "ssh-ed25519 AAAAkey comment"),
        use_spot=False, accelerators=[],
    )  # fmt: skip
    args.update(kw)
    return instances.insert_body(**args)


def test_the_insert_body() -> None:
    body = _body()
    assert body.machine_type == "zones/us-central1-a/machineTypes/n1-standard-8"
    disk = body.disks[0]
    assert disk.boot and disk.auto_delete and disk.initialize_params.disk_size_gb == 100
    assert disk.initialize_params.disk_type.endswith("/diskTypes/pd-balanced")
    assert not body.network_interfaces[0].access_configs  # internal IPs only
    items = {i.key: i.value for i in body.metadata.items}
    assert items["ssh-keys"] == "gcpuser:ssh-ed25519 AAAAkey gcpuser"
    assert body.tags.items == ["styx-abc"] and body.labels["styx-cluster"] == "c"
    assert not body.guest_accelerators and body.scheduling.provisioning_model != "SPOT"


def test_spot_and_gpus_in_the_body() -> None:
    body = _body(use_spot=True, accelerators=[("nvidia-tesla-t4", 1)], external_ip=True)
    assert body.scheduling.provisioning_model == "SPOT"
    assert body.scheduling.instance_termination_action == "DELETE"
    assert body.scheduling.on_host_maintenance == "TERMINATE"
    acc = body.guest_accelerators[0]
    assert acc.accelerator_type == "projects/p/zones/us-central1-a/acceleratorTypes/nvidia-tesla-t4"
    assert acc.accelerator_count == 1
    assert body.network_interfaces[0].access_configs[0].type_ == "ONE_TO_ONE_NAT"
    a2 = _body(machine_type="a2-highgpu-1g")
    assert a2.scheduling.on_host_maintenance == "TERMINATE" and not a2.guest_accelerators


@pytest.mark.parametrize(
    ("given", "gpus", "image"),
    [
        (None, False, instances.CPU_IMAGE),
        (None, True, instances.GPU_IMAGE),
        ("docker:ubuntu:22.04", False, instances.CPU_IMAGE),
        (
            "projects/my-proj/global/images/my-image",
            False,
            "projects/my-proj/global/images/my-image",
        ),
        (
            "ubuntu-os-cloud/ubuntu-2204-lts",
            False,
            "projects/ubuntu-os-cloud/global/images/family/ubuntu-2204-lts",
        ),
        ("my-image", False, "global/images/my-image"),
    ],
)
def test_images(given: str | None, gpus: bool, image: str) -> None:
    assert _image(given, gpus) == image


def test_settings() -> None:
    s = GCPSettings.from_mapping({"vpc_name": "styx-vpc", "use_internal_ips": True, "project_id": "p1",
                                  "ssh_proxy_command": {"us-east1": "nc %h %p"}})  # fmt: skip
    assert s.vpc_name == "styx-vpc" and s.project_id == "p1" and not s.external_ips
    assert s.proxy_command("us-east1") == "nc %h %p" and s.proxy_command("us-west1") is None
    assert GCPSettings.from_mapping(None).vpc_name == "default"
    assert GCPSettings.from_mapping(
        {"use_internal_ips": True, "force_enable_external_ips": True}
    ).external_ips
