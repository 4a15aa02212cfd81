"""``styx check``: per-infra credential checks (from local files only, unless probing),
run through each infra's declaration, and the cached result."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from styx.infra import InfraStatus
from styx.providers import checks, registry, ssh_pools


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty HOME and STYX_HOME, and no cloud variables from the outside."""
    fake = tmp_path / "user"
    fake.mkdir()
    monkeypatch.setenv("HOME", str(fake))
    monkeypatch.setenv("STYX_HOME", str(tmp_path / "styx"))
    for var in (
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
        "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "GOOGLE_APPLICATION_CREDENTIALS",
        "CLOUDSDK_CONFIG", "AZURE_CONFIG_DIR", "AZURE_CLIENT_ID", "AZURE_TENANT_ID",
        "AZURE_CLIENT_SECRET", "KUBECONFIG", "VAST_API_KEY",
    ):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(fake / ".aws" / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(fake / ".aws" / "config"))
    return fake


def status(name: str) -> InfraStatus:
    return {s.name: s for s in checks.run_checks()}[name]


def test_nothing_but_local_on_a_bare_machine(home: Path) -> None:
    results = checks.run_checks()
    assert [s.name for s in results if s.enabled] == ["local"]
    assert all(s.reason for s in results)
    assert checks.enabled_infra() == ["local"]


def test_ssh_needs_a_pool_with_hosts(home: Path) -> None:
    pools = ssh_pools.pools_file()
    pools.write_text("lab: {hosts: []}\n")
    assert not status("ssh").enabled
    pools.write_text("lab:\n  hosts: [198.18.5.1, 198.18.5.2]\n  user: me\n")
    assert status("ssh").enabled and "lab" in status("ssh").reason


def test_cloud_credential_files(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("boto3")
    (home / ".aws").mkdir()
    (home / ".aws" / "credentials").write_text(
        "[default]\naws_access_key_id=AK\naws_secret_access_key=SK\n"
    )
    (home / ".config" / "gcloud").mkdir(parents=True)
    (home / ".config" / "gcloud" / "application_default_credentials.json").write_text("{}")
    (home / ".azure").mkdir()
    (home / ".azure" / "azureProfile.json").write_text(json.dumps({"subscriptions": [{"id": "s"}]}))
    (home / ".kube").mkdir()
    (home / ".kube" / "config").write_text("contexts: [{name: kind-styx, context: {}}]\n")
    (home / ".lambda_cloud").mkdir()
    (home / ".lambda_cloud" / "lambda_keys").write_text("api_key = secret\n")
    monkeypatch.setenv("VAST_API_KEY", "k")
    # Kubernetes is enabled only by an API server that answers (tests/k8s): this kubeconfig
    # has a context but no current one and no server.
    assert checks.enabled_infra(refresh=True) == [
        "local", "aws", "gcp", "azure", "lambda", "vast",
    ]  # fmt: skip
    assert "no current context" in status("kubernetes").reason


def test_gcloud_account_and_broken_env(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = home / ".config" / "gcloud" / "configurations"
    conf.mkdir(parents=True)
    (conf / "config_default").write_text("[core]\naccount = me@example.com\n")
    assert status("gcp").enabled
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(home / "missing.json"))
    assert "missing file" in status("gcp").reason


def test_cache_is_read_without_checking_again(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checks.run_checks()
    assert checks.cache_path().is_file()

    calls: list[bool] = []

    def counted(probe: bool = False) -> InfraStatus:
        calls.append(probe)
        return InfraStatus("local", True, "this machine")

    local = registry.info("local")
    registry.register(dataclasses.replace(local, check=counted))
    try:
        assert checks.enabled_infra() == ["local"]  # from the cache
        assert calls == []
        assert checks.enabled_infra(refresh=True) == ["local"]
        assert calls == [False]
    finally:
        registry.unregister("local")
