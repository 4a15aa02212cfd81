"""AWS: clusters of EC2 instances (``infra: aws``). Importing this package is cheap; boto3 is
imported when the provider first calls AWS."""

from __future__ import annotations

from styx.providers.aws.provider import AWSProvider

__all__ = ["AWSProvider"]
