"""The provider seam end to end: an infra declared in ten lines (here, in this test) appears in
``styx check`` and in plans without any other file knowing it; ``--probe`` runs each infra's
probe; an infra whose catalog cannot be had never fails a plan that does not need it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from styx.cli.main import main
from styx.infra import Capabilities, Capability, InfraOffer, InfraStatus, NodeCapacity
from styx.providers import registry
from styx.providers.local import LocalProvider


class NimbusProvider(LocalProvider):
    """Stands in for a real provider class; plans never instantiate it."""

    name = "nimbus"


# --- the whole declaration of a new infra ------------------------------------------------------
NIMBUS = registry.InfraInfo(
    name="nimbus",
    title="Nimbus Cloud",
    capabilities=Capabilities.of(Capability.MULTI_NODE, Capability.PORTS),
    check=lambda probe: InfraStatus("nimbus", True, "probed" if probe else "key in ~/.nimbus"),
    provider=f"{__name__}:NimbusProvider",
    offers=lambda task: [
        InfraOffer("nimbus", "nimbus", (NodeCapacity(64, 512, {"MI300X": 8}),) * 4, 3.5)
    ],
)
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def nimbus() -> Iterator[None]:
    registry.register(NIMBUS)
    yield
    registry.unregister("nimbus")


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def rows(out: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in out.splitlines()[1:] if line.strip()}


def test_a_new_infra_appears_in_check_and_in_plans(
    nimbus: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["check"], capsys)
    assert code == 0
    assert rows(out)["nimbus"][:3] == ["nimbus", "yes", "yes"], out
    assert "Launches may use: local, nimbus." in out
    code, out, _ = run(["check", "--probe", "nimbus"], capsys)
    assert code == 0 and "probed" in out and "local" not in rows(out)

    yaml = tmp_path / "t.yaml"
    yaml.write_text("num_nodes: 2\nresources: {accelerators: MI300X:8}\nrun: echo hi\n")
    code, out, err = run(["launch", "--dryrun", "-c", "c1", str(yaml)], capsys)
    assert code == 0, err
    assert "nimbus" in out and "$7" in out  # 2 nodes at $3.5/h

    yaml.write_text("resources: {accelerators: MI300X:8, use_spot: true}\nrun: echo hi\n")
    code, _, err = run(["launch", "--dryrun", "-c", "c1", str(yaml)], capsys)
    assert code != 0 and "nimbus" in err and "spot" in err


def test_unregistered_it_is_gone(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["check"], capsys)
    assert code == 0 and "nimbus" not in out
    code, _, err = run(["check", "nimbus"], capsys)
    assert code == 2 and "Unknown infra: nimbus." in err


def test_aws_probe_reports_the_identity_moto_gives(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """moto's in-process AWS stands in for STS (no server can run here); the local check
    only sees that credentials exist, the probe asks STS who they belong to."""
    moto = pytest.importorskip("moto")
    from styx.providers.aws import client

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    client.forget_clients()
    with moto.mock_aws():
        code, out, _ = run(["check", "aws"], capsys)
        assert code == 0 and rows(out)["aws"][1] == "yes" and "STS" not in out
        code, out, _ = run(["check", "--probe", "aws"], capsys)
    client.forget_clients()
    assert code == 0 and rows(out)["aws"][1] == "yes"
    assert "account 123456789012" in out and "arn:aws:" in out.replace("\n", "")


def test_a_missing_catalog_never_fails_a_plan_that_does_not_need_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Lambda key, no catalog anywhere and no network: local plans still work."""
    home = Path.home()
    (home / ".lambda_cloud").mkdir(exist_ok=True)
    (home / ".lambda_cloud" / "lambda_keys").write_text("api_key = k\n")
    monkeypatch.delenv("STYX_CATALOG_DIR", raising=False)
    monkeypatch.setenv("STYX_CATALOG_URL", "http://127.0.0.1:9/none")  # refused at once
    try:
        yaml = tmp_path / "t.yaml"
        for resources in ("{infra: local}", "{cpus: 1}"):
            yaml.write_text(f"resources: {resources}\nrun: echo hi\n")
            code, out, err = run(["launch", "--dryrun", "-c", "c1", str(yaml)], capsys)
            assert code == 0, err
            assert "local" in out
        yaml.write_text("resources: {infra: lambda, accelerators: A100:8}\nrun: echo hi\n")
        code, _, err = run(["launch", "--dryrun", "-c", "c1", str(yaml)], capsys)
        assert code != 0 and "Lambda" in err and "Traceback" not in err
    finally:
        (home / ".lambda_cloud" / "lambda_keys").unlink()


def test_the_cache_records_every_declared_infra(capsys: pytest.CaptureFixture[str]) -> None:
    from styx.providers.checks import cache_path

    run(["check"], capsys)
    names = [s["name"] for s in json.loads(cache_path().read_text())["infra"]]
    assert names == registry.builtin_names()
