"""The AWS test world's fixtures (defined in tests/aws/fixtures.py)."""

from .fixtures import (  # noqa: F401
    _aws_materializer,
    _aws_proxy,
    aws_endpoint,
    aws_slot,
    aws_vpc,
    materializer,
    moto_server,
    no_aws_leaks,
)
