"""EC2 and STS errors translated into Styx's typed errors, by error *code*, never message text.

Every :class:`~styx.errors.ResourcesUnavailable` raised here carries a typed ``scope``
(:class:`~styx.errors.FailoverScope`), what a failover should block: ``ZONE`` (capacity),
``REGION`` (quota, an image or instance type missing there), or ``CLOUD`` (credentials); and
``details`` for display:

- ``cloud``: ``"aws"``; ``region`` and, where one was tried, ``zone``;
- ``aws_code``: EC2's error code (or the botocore exception's name).

==============================  =====================  =========
EC2 code                        Styx error             scope
==============================  =====================  =========
capacity codes (see below)      NoCapacity             zone
quota codes (see below)         QuotaExceeded          region
auth codes, no credentials      AuthFailed             cloud
InvalidAMIID.*                  ResourcesUnavailable   region
RequestLimitExceeded, ...       RemoteError            (retry)
endpoint unreachable, timeout   RemoteError            (retry)
anything else                   RemoteError            none
==============================  =====================  =========

Throttling is not a quota: botocore retries it once (see :mod:`.client`), and what is left
surfaces as a retryable ``RemoteError`` (``details['retryable']`` is True), not as a reason to
leave the region.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from styx.errors import (
    AuthFailed,
    FailoverScope,
    NoCapacity,
    QuotaExceeded,
    RemoteError,
    ResourcesUnavailable,
    StyxError,
)

#: The zone cannot hold this request now: try another zone.
CAPACITY_CODES = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientCapacity",
        "InsufficientHostCapacity",
        "InsufficientReservedInstanceCapacity",
        "InsufficientFreeAddressesInSubnet",
        "Unsupported",  # the instance type is not offered in this zone
        "UnfulfillableCapacity",  # spot
        "SpotMaxPriceTooLow",
        "capacity-not-available",  # a spot request's status code
    }
)
#: An account limit of the region: no zone of it will do better.
QUOTA_CODES = frozenset(
    {
        "InstanceLimitExceeded",
        "VcpuLimitExceeded",
        "MaxSpotInstanceCountExceeded",
        "VolumeLimitExceeded",
        "MaxIOPSLimitExceeded",
        "SecurityGroupLimitExceeded",
        "RulesPerSecurityGroupLimitExceeded",
        "KeyPairLimitExceeded",
        "PendingVerification",
    }
)
#: The credentials (or the account) are refused: no region of AWS will do better.
AUTH_CODES = frozenset(
    {
        "AuthFailure",
        "UnauthorizedOperation",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "OptInRequired",
        "Blocked",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "AccessDenied",
        "AccessDeniedException",
        "IncompleteSignature",
        "MissingAuthenticationToken",
    }
)
THROTTLE_CODES = frozenset(
    {"RequestLimitExceeded", "Throttling", "ThrottlingException", "RequestThrottled"}
)
IMAGE_CODES = frozenset(
    {"InvalidAMIID.NotFound", "InvalidAMIID.Malformed", "InvalidAMIID.Unavailable"}
)


def error_code(exc: BaseException) -> str | None:
    """EC2's error code of a botocore ``ClientError``; None for anything else."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    code = (response.get("Error") or {}).get("Code")
    return str(code) if code else None


def translate(
    exc: BaseException, *, region: str, zone: str | None = None, action: str = "calling EC2"
) -> StyxError:
    """The Styx error for a botocore exception raised while ``action`` in ``region``/``zone``."""
    from botocore import exceptions as bx  # type: ignore[import-untyped,import-not-found,unused-ignore]

    if isinstance(exc, StyxError):
        return exc
    where = f"{region}/{zone}" if zone else region
    details: dict[str, Any] = {"cloud": "aws", "region": region}
    if zone:
        details["zone"] = zone
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return AuthFailed(
            "No AWS credentials were found.",
            "Run `aws configure` (or set AWS_PROFILE / AWS_ACCESS_KEY_ID), then `styx check aws`.",
            scope=FailoverScope.CLOUD,
            details={**details, "aws_code": type(exc).__name__},
        )
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectTimeoutError | bx.ReadTimeoutError):
        return RemoteError(
            f"The AWS API in {region} could not be reached while {action}: {exc}.",
            "Check the network (and AWS_ENDPOINT_URL if set), then retry.",
            code="cloud-api-unreachable",
            details={**details, "retryable": True, "aws_code": type(exc).__name__},
        )
    code = error_code(exc)
    if code is None:
        return RemoteError(
            f"The AWS SDK failed while {action} in {region}: {exc}.",
            "Retry; run with --debug to see the SDK's error.",
            code="cloud-api-error",
            details={**details, "aws_code": type(exc).__name__},
        )
    message = str((getattr(exc, "response", {}).get("Error") or {}).get("Message") or code)
    details["aws_code"] = code
    said = f"EC2 said {code}: {message}"
    if code in CAPACITY_CODES:
        return NoCapacity(
            f"No capacity in {where} while {action} ({said}).",
            scope=FailoverScope.ZONE,
            details=details,
        )
    if code in QUOTA_CODES:
        return QuotaExceeded(
            f"An AWS quota of region {region} is exhausted while {action} ({said}).",
            "Ask AWS for a larger quota (Service Quotas console), or use another region.",
            scope=FailoverScope.REGION,
            details=details,
        )
    if code in AUTH_CODES:
        return AuthFailed(
            f"AWS refused the credentials while {action} in {region} ({said}).",
            "Check the AWS credentials and their permissions with `styx check aws`.",
            scope=FailoverScope.CLOUD,
            details=details,
        )
    if code in IMAGE_CODES:
        return ResourcesUnavailable(
            f"The image does not exist in {region} ({said}).",
            "AMI ids are per region: set an image_id of this region, or let Styx choose one.",
            code="image-not-found",
            scope=FailoverScope.REGION,
            details=details,
        )
    if code in THROTTLE_CODES:
        return RemoteError(
            f"AWS throttled the requests while {action} in {region} ({said}).",
            "Wait a minute and retry; fewer concurrent launches help.",
            code="cloud-throttled",
            details={**details, "retryable": True},
        )
    return RemoteError(
        f"EC2 failed while {action} in {where} ({said}).",
        "Check the request (instance type, image, network config) and retry.",
        code="cloud-api-error",
        details=details,
    )


@contextmanager
def translated(region: str, zone: str | None = None, action: str = "calling EC2") -> Iterator[None]:
    """Translate botocore errors raised inside the block (``raise ... from`` the original)."""
    from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped,import-not-found,unused-ignore]

    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, region=region, zone=zone, action=action) from exc
