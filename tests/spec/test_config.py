from __future__ import annotations

from pathlib import Path

import pytest

from styx.errors import ConfigError
from styx.spec.config import Config, load_config

GOOD = """\
db: postgresql+psycopg://styx@db/styx
allowed_clouds: [aws, GCP, kubernetes]
aws:
  vpc_name: my-vpc
  use_internal_ips: true
  security_group_name: my-sg
  ssh_proxy_command: ssh -W %h:%p jump
  labels: {team: ml}
gcp:
  managed_instance_group: {run_duration: 3600}
  vpc_name: null
kubernetes:
  allowed_contexts: [ctx-a, ctx-b]
  provision_timeout: 900
  context_configs:
    ctx-a: {namespace: ml, pod_config: {spec: {}}}
ssh:
  allowed_node_pools: [lab]
jobs:
  controller:
    resources: {cpus: 4+, memory: 8x}
    autostop: 10
docker:
  run_options: [--shm-size=8g]
nvidia_gpus: {disable_ecc: true}
provision: {ssh_timeout: 30}
admin_policy: mypkg.policy.Policy
workspaces: {default: {}}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_good_config_and_get(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.get("db") == "postgresql+psycopg://styx@db/styx"
    assert config.get("allowed_clouds") == ["aws", "gcp", "kubernetes"]
    assert config.get("aws.labels") == {"team": "ml"}
    assert config.get("gcp.vpc_name") is None and config.get("gcp.vpc_name", "x") is None
    assert config.get("aws.missing.deeper", 5) == 5
    assert config.get("jobs.controller.resources.cpus") == "4+"
    assert Config.from_dict(config.to_dict()) == Config(config.data)


def test_missing_and_empty_files_are_empty_configs(tmp_path: Path) -> None:
    assert load_config(tmp_path / "none.yaml").to_dict() == {}
    assert load_config(write(tmp_path, "# nothing\n")).to_dict() == {}


def test_default_path_uses_styx_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYX_HOME", str(tmp_path))
    (tmp_path / "config.yaml").write_text("db: sqlite:////tmp/x.db\n")
    assert load_config().get("db") == "sqlite:////tmp/x.db"


@pytest.mark.parametrize(
    ("text", "reason", "path", "line"),
    [
        ("aws:\n  vpc_nam: x\n", "unknown-key", "aws.vpc_nam", 2),
        ("aws:\n  use_internal_ips: yes please\n", "invalid-type", "aws.use_internal_ips", 2),
        ("allowed_clouds: [aws, azur]\n", "invalid-value", "allowed_clouds[1]", 1),
        ("db: not a url\n", "invalid-value", "db", 1),
        (
            "jobs:\n  controller:\n    resources: {cpus: lots}\n",
            "invalid-value",
            "jobs.controller.resources.cpus",
            3,
        ),
        ("jobs:\n  controler: {}\n", "unknown-key", "jobs.controler", 2),
        (
            "gcp:\n  managed_instance_group: {provision_timeout: 1}\n",
            "missing-field",
            "gcp.managed_instance_group",
            2,
        ),
        (
            "kubernetes:\n  context_configs:\n    c: {namespce: x}\n",
            "unknown-key",
            "kubernetes.context_configs.c.namespce",
            3,
        ),
        ("admin_policy: not-a-module\n", "invalid-value", "admin_policy", 1),
        ("provision: {ssh_timeout: 0}\n", "invalid-value", "provision.ssh_timeout", 1),
        ("a: [\n", "yaml-syntax", None, 2),
        ("a: 1\na: 2\n", "duplicate-key", "a", 2),
        ("- 1\n", "invalid-type", None, 1),
    ],
)
def test_invalid_config(
    tmp_path: Path, text: str, reason: str, path: str | None, line: int
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    error = info.value
    assert error.code == "invalid-config" and error.details["reason"] == reason
    assert error.location is not None
    assert (error.location.path, error.location.line) == (path, line), str(error)


def test_suggestion_for_config_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "kubernets:\n  namespace: x\n"))
    assert info.value.hint == "Did you mean 'kubernetes'?"


def test_several_documents_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, "db: sqlite:///a\n---\ndb: sqlite:///b\n"))


def test_merged_applies_task_overrides_deeply() -> None:
    base = Config.from_dict(
        {"kubernetes": {"provision_timeout": 10, "namespace": "a"}, "db": "sqlite:///x"}
    )
    merged = base.merged({"kubernetes": {"provision_timeout": 600}})
    assert merged.get("kubernetes") == {"provision_timeout": 600, "namespace": "a"}
    assert merged.get("db") == "sqlite:///x"
    assert base.get("kubernetes.provision_timeout") == 10


def test_keys_styx_does_not_know_are_ignored_with_a_warning_typos_still_fail(
    tmp_path: Path,
) -> None:
    """SkyPilot adds config keys often: an unknown key is skipped and named; a near-miss of a
    known key is still the error it was, with its did-you-mean."""
    from styx.errors import ConfigError
    from styx.spec.config import load_config

    path = tmp_path / "config.yaml"
    path.write_text("future_feature: {enabled: true}\njobs:\n  brand_new_knob: 3\n")
    config = load_config(path)
    assert config.ignored == ("future_feature", "jobs.brand_new_knob")
    assert [w.split("'")[1] for w in config.warnings()] == ["future_feature", "jobs.brand_new_knob"]
    assert config.get("future_feature") is None
    path.write_text("aws:\n  vpc_nam: x\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "Did you mean 'vpc_name'" in err.value.hint
