"""Fixtures of the AWS test world (re-exported by tests/aws/conftest.py; a conftest elsewhere
may ``from aws.fixtures import *`` to use them too).

* ``moto_server`` (session): :class:`MotoServer` -- ``.url``, ``.env``, ``.reset()``.
* ``aws_endpoint``: :class:`AwsEndpoint` -- moto reset, no fault rules, empty request log; the
  test's environment points boto3 at the fault proxy (``AWS_ENDPOINT_URL`` & co).
* ``aws_slot`` (session): :class:`AwsSlot` -- this run's subnets, bridge and namespace names.
* ``aws_vpc``: :class:`AwsNetwork` -- VPC ``styx-test-vpc`` 198.18.0.0/16 with a subnet per zone.
* ``materializer``: :class:`Materializer` polling, with no hosts from earlier tests.
* ``no_aws_leaks``: a set of allowed key-pair names (fnmatch patterns) to add to; after the
  test, fails if anything is left in moto (:meth:`AwsEndpoint.assert_no_leaks`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testworld.testbed import usable

from .harness import AwsEndpoint, AwsNetwork, AwsSlot, MotoServer, ProxyProcess, create_test_vpc
from .materializer import Materializer

__all__ = [
    "aws_endpoint",
    "aws_slot",
    "aws_vpc",
    "materializer",
    "moto_server",
    "no_aws_leaks",
]


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """moto's server on 127.0.0.1 (EC2 warmed up), for the whole session."""
    pytest.importorskip("boto3")
    pytest.importorskip("moto.server")
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    try:
        server.start()
    except Exception:
        server.stop()
        raise
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _aws_proxy(moto_server: MotoServer) -> Iterator[ProxyProcess]:
    proxy = ProxyProcess(moto_server.port, moto_server.workdir).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def aws_endpoint(
    moto_server: MotoServer,
    _aws_proxy: ProxyProcess,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AwsEndpoint]:
    """A clean moto behind the fault proxy; the environment points boto3 at the proxy."""
    endpoint = AwsEndpoint(moto_server, _aws_proxy.url)
    endpoint.reset()
    for var in (
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_SESSION_TOKEN",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(var, raising=False)
    nowhere = tmp_path_factory.getbasetemp() / "no-aws-config"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(nowhere / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nowhere / "credentials"))
    for key, value in endpoint.env.items():
        monkeypatch.setenv(key, value)
    try:
        yield endpoint
    finally:
        endpoint.clear()


@pytest.fixture(scope="session")
def aws_slot() -> Iterator[AwsSlot]:
    slot = AwsSlot().claim()
    try:
        yield slot
    finally:
        slot.release()


@pytest.fixture
def aws_vpc(aws_endpoint: AwsEndpoint, aws_slot: AwsSlot) -> AwsNetwork:
    """The test VPC in us-east-1 (a, b, c) and us-west-2 (a, b); see tests/aws/harness.py."""
    return create_test_vpc(aws_endpoint.moto.url, aws_slot.slot)


@pytest.fixture(scope="session")
def _aws_materializer(
    moto_server: MotoServer,
    _aws_proxy: ProxyProcess,
    aws_slot: AwsSlot,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Materializer]:
    why = usable()
    if why:
        pytest.skip(f"no test hosts: {why}")
    root: Path = tmp_path_factory.mktemp("aws-hosts")
    mat = Materializer(root, moto_server.url, slot=aws_slot, events_url=_aws_proxy.url)
    mat.start(poll=False)
    try:
        yield mat
    finally:
        mat.close()


@pytest.fixture
def materializer(_aws_materializer: Materializer, aws_vpc: AwsNetwork) -> Iterator[Materializer]:
    """Hosts for the running instances of this test's moto (polling in the background)."""
    mat = _aws_materializer
    mat.clear()
    mat.errors.clear()
    mat.resume()
    try:
        yield mat
    finally:
        mat.pause()
        mat.clear()


@pytest.fixture
def no_aws_leaks(aws_endpoint: AwsEndpoint) -> Iterator[set[str]]:
    """Add the user's own key-pair names (patterns) to the set; after the test nothing else may
    be left in moto, in the layout's regions or any region the code under test touched."""
    allowed: set[str] = set()
    yield allowed
    aws_endpoint.assert_no_leaks(allowed)
