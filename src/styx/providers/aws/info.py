"""AWS's declaration for the provider seam: what it can do, and its credential check.

The local check asks boto3's credential chain (environment, shared files, SSO profiles) with
the instance-metadata lookup switched off, so it makes no network call; the probe
(``styx check --probe``) calls STS GetCallerIdentity and reports the account and ARN.
"""

from __future__ import annotations

import os

from styx.infra import Capabilities, Capability, InfraStatus
from styx.providers.registry import InfraInfo

C = Capability


def check(probe: bool = False) -> InfraStatus:
    """Whether boto3 finds AWS credentials; with ``probe``, whether STS accepts them."""
    try:
        import boto3  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        from styx.paths import pip_install

        return InfraStatus("aws", False, f"boto3 is not installed (`{pip_install('boto3')}`)")
    saved = os.environ.get("AWS_EC2_METADATA_DISABLED")
    if not probe:
        os.environ["AWS_EC2_METADATA_DISABLED"] = "true"  # no call to 169.254.169.254
    try:
        credentials = boto3.Session().get_credentials()
    except Exception as err:  # any SDK failure means "not usable", with why
        return InfraStatus("aws", False, f"boto3 could not read credentials: {err}")
    finally:
        if not probe:
            if saved is None:
                os.environ.pop("AWS_EC2_METADATA_DISABLED", None)
            else:
                os.environ["AWS_EC2_METADATA_DISABLED"] = saved
    if credentials is None:
        return InfraStatus("aws", False, "no AWS credentials (run `aws configure`)")
    source = f"credentials from {getattr(credentials, 'method', 'boto3')}"
    if not probe:
        return InfraStatus("aws", True, source)
    from styx.providers.aws import client

    ok, who = client.check_credentials()
    return InfraStatus("aws", ok, f"{source}; STS: {who}" if ok else f"STS refused: {who}")


# No AUTOSTOP: stopping or tearing down from the head would need AWS credentials on the head
# node, which Styx does not upload; the client's `styx stop/down` does it instead.
INFO = InfraInfo(
    name="aws",
    title="AWS",
    capabilities=Capabilities.of(
        C.MULTI_NODE,
        C.SPOT,
        C.STOP,
        C.PORTS,
        C.CUSTOM_IMAGES,
        C.CONTAINER_IMAGES,
        C.BUCKET_MOUNTS,
        C.ZONES,
        disk_tiers=("low", "medium", "high", "ultra"),
    ),
    check=check,
    provider="styx.providers.aws:AWSProvider",
    catalog="aws",
)
