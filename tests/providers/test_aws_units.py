"""The AWS provider's pure parts: error translation by code, client tokens, ports, config keys,
disk tiers, the local key, and the cheap import. No AWS API is called here."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from styx.errors import (
    AuthFailed,
    FailoverScope,
    NoCapacity,
    QuotaExceeded,
    RemoteError,
    ResourcesUnavailable,
    UserInputError,
)
from styx.providers.aws import client, instances, keys, network
from styx.providers.aws.errors import translate
from styx.providers.aws.settings import AWSSettings


def _client_error(code: str, message: str = "boom") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "RunInstances")


@pytest.mark.parametrize(
    "code, kind, scope",
    [
        ("InsufficientInstanceCapacity", NoCapacity, "zone"),
        ("InsufficientCapacity", NoCapacity, "zone"),
        ("InsufficientHostCapacity", NoCapacity, "zone"),
        ("Unsupported", NoCapacity, "zone"),
        ("SpotMaxPriceTooLow", NoCapacity, "zone"),
        ("InstanceLimitExceeded", QuotaExceeded, "region"),
        ("VcpuLimitExceeded", QuotaExceeded, "region"),
        ("MaxSpotInstanceCountExceeded", QuotaExceeded, "region"),
        ("AuthFailure", AuthFailed, "cloud"),
        ("UnauthorizedOperation", AuthFailed, "cloud"),
        ("InvalidClientTokenId", AuthFailed, "cloud"),
        ("SignatureDoesNotMatch", AuthFailed, "cloud"),
        ("OptInRequired", AuthFailed, "cloud"),
        ("InvalidAMIID.NotFound", ResourcesUnavailable, "region"),
    ],
)
def test_codes_translate_to_typed_errors_with_a_scope(
    code: str, kind: type[ResourcesUnavailable], scope: str
) -> None:
    err = translate(_client_error(code), region="us-east-1", zone="us-east-1a")
    assert type(err) is kind
    assert err.scope is FailoverScope(scope)
    assert "scope" not in err.details and err.to_dict()["scope"] == scope
    assert err.details["aws_code"] == code
    assert err.details["region"] == "us-east-1" and err.details["zone"] == "us-east-1a"


def test_messages_never_decide_only_codes_do() -> None:
    # A capacity-sounding message under an unrelated code is not a capacity error.
    err = translate(
        _client_error("InvalidParameterValue", "InsufficientInstanceCapacity"), region="r"
    )
    assert type(err) is RemoteError and err.code == "cloud-api-error"


def test_throttling_is_retryable_not_a_quota() -> None:
    err = translate(_client_error("RequestLimitExceeded"), region="us-east-1")
    assert type(err) is RemoteError and err.code == "cloud-throttled"
    assert err.details["retryable"] is True


def test_sdk_failures_without_a_code() -> None:
    no_creds = translate(NoCredentialsError(), region="us-east-1")
    assert type(no_creds) is AuthFailed and no_creds.scope is FailoverScope.CLOUD
    down = translate(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), region="r")
    assert type(down) is RemoteError and down.code == "cloud-api-unreachable"
    assert "AWS_ENDPOINT_URL" in down.hint


def test_client_retries_twice_with_short_timeouts_and_never_retries_capacity() -> None:
    config = client._config()
    assert config.retries == {"total_max_attempts": 2, "mode": "standard"}
    assert config.connect_timeout <= 10 and config.read_timeout <= 60
    capacity = (None, {"Error": {"Code": "InsufficientInstanceCapacity"}})
    assert client._final_errors_not_retried(response=capacity) is False
    server = (None, {"Error": {"Code": "InternalError"}})
    assert client._final_errors_not_retried(response=server) is None


def test_client_token_is_stable_per_attempt_and_zone() -> None:
    token = instances.client_token("c1", "a1b2", "us-east-1a")
    assert token == instances.client_token("c1", "a1b2", "us-east-1a")
    assert token != instances.client_token("c1", "a1b2", "us-east-1b")
    assert token != instances.client_token("c1", "ffff", "us-east-1a")
    assert len(token) <= 64 and token.isascii()


def test_ports() -> None:
    assert network.parse_ports(("8080", "9000-9010", 22)) == [(8080, 8080), (9000, 9010), (22, 22)]  # type: ignore[arg-type]
    for bad in ("http", "10-5", "70000"):
        with pytest.raises(UserInputError):
            network.parse_ports((bad,))
    rules = network._permissions("sg-1", [(8080, 8080), (22, 22)])
    opened = {(r["IpProtocol"], r.get("FromPort")) for r in rules}
    assert opened == {("tcp", 22), ("tcp", 8080), ("-1", None)}


def test_settings_read_skypilot_keys() -> None:
    s = AWSSettings.from_mapping(
        {
            "vpc_name": "main",
            "subnet_names": "private-a",
            "use_internal_ips": True,
            "ssh_user": "root",
            "ssh_proxy_command": {"us-east-1": "ssh -W %h:%p jump", "us-west-2": None},
            "security_group_name": [{"train-*": "sg-train"}, {"*": "sg-all"}],
            "labels": {"team": "ml"},
            "post_provision_runcmd": ["echo hi", ["ls", "-l", "/"]],
        }
    )
    assert s.vpc_names == ("main",) and s.subnet_names == ("private-a",)
    assert s.use_internal_ips and s.ssh_user == "root"
    assert s.proxy_command("us-east-1") == "ssh -W %h:%p jump"
    assert s.proxy_command("us-west-2") is None
    assert s.security_group_for("train-1") == "sg-train"
    assert s.security_group_for("other") == "sg-all"
    assert AWSSettings().security_group_for("x") is None and AWSSettings().ssh_user == "ubuntu"
    assert s.user_data() == '#cloud-config\nruncmd:\n  - "echo hi"\n  - "ls -l /"\n'


def test_disk_tiers() -> None:
    (low,) = instances.block_devices("/dev/sda1", 50, "low", False)
    assert low == {
        "DeviceName": "/dev/sda1",
        "Ebs": {"VolumeSize": 50, "DeleteOnTermination": True, "VolumeType": "gp3"},
    }
    (high,) = instances.block_devices("/dev/xvda", 20, "high", True)
    assert high["Ebs"]["VolumeType"] == "io2" and high["Ebs"]["Iops"] == 20 * 500
    assert high["Ebs"]["Encrypted"] is True
    (default,) = instances.block_devices("/dev/sda1", None, None, False)
    assert default["Ebs"]["VolumeSize"] == instances.DEFAULT_DISK_GB
    with pytest.raises(ResourcesUnavailable):
        instances.block_devices("/dev/sda1", 10, "fastest", False)


def test_local_key_is_private_and_named_by_its_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STYX_HOME", str(tmp_path))
    path, public = keys.ensure_local_key()
    assert path == tmp_path / "ssh" / "styx-key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert public.startswith("ssh-ed25519 ")
    assert keys.ensure_local_key() == (path, public)  # made once
    name = keys.key_pair_name(public)
    assert name.startswith("styx-key-") and name == keys.key_pair_name(public + " other-comment")


def test_import_is_cheap_and_registered() -> None:
    code = (
        "import sys, styx.providers.aws;"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules;"
        "from styx.providers.registry import get_provider;"
        "p = get_provider('aws'); assert p.name == 'aws'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
