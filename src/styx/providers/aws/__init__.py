"""AWS: clusters of EC2 instances (``infra: aws``). Importing this package is cheap: the
provider (and boto3) load when first used; ``info`` holds its declaration for the seam."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from styx.providers.aws.provider import AWSProvider

__all__ = ["AWSProvider"]


def __getattr__(name: str) -> Any:
    if name == "AWSProvider":
        from styx.providers.aws.provider import AWSProvider

        return AWSProvider
    raise AttributeError(f"module 'styx.providers.aws' has no attribute {name!r}")
