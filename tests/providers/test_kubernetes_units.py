"""Kubernetes provider pieces that need no API server: manifests, GPU labels, settings,
kubeconfig contexts, error translation, Python choice, exec prologue, relocation."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from styx.errors import AuthFailed, ConflictError, NotFoundError, RemoteError, UsageError
from styx.providers.kubernetes import gpus, kubeconfig, manifests
from styx.providers.kubernetes.errors import translate
from styx.providers.kubernetes.podexec import env_prologue
from styx.providers.kubernetes.provider import _fitting_python, _image
from styx.providers.kubernetes.settings import K8sSettings, merge


def _settings(**kw: object) -> K8sSettings:
    base: dict[str, object] = dict(
        context="c", namespace="ns", pod_config={}, provision_timeout=10.0, limits=None,
        pricing={}, labels={}, annotations={}, default_image="img",
    )  # fmt: skip
    base.update(kw)
    return K8sSettings(**base)  # type: ignore[arg-type]


def test_names_are_dns_labels_and_unique() -> None:
    assert manifests.pod_names("dev", 3) == ["dev-head", "dev-worker-1", "dev-worker-2"]
    odd = manifests.base_name("My_Cluster.v2")
    assert odd.startswith("my-cluster-v2-") and len(odd) <= 40
    assert manifests.base_name("My_Cluster.v2") != manifests.base_name("my-cluster-v2")
    assert len(manifests.base_name("a" * 63)) <= 40


def test_pod_manifest_requests_limits_gpus_and_pod_config() -> None:
    s = _settings(
        limits=1.5,
        pod_config={"spec": {"containers": [{"env": [{"name": "A", "value": "1"}]}],
                             "tolerations": [{"key": "gpu"}]},
                    "metadata": {"name": "evil", "labels": {"team": "x"}}},
    )  # fmt: skip
    terms = [{"matchExpressions": [{"key": "k", "operator": "In", "values": ["v"]}]}]
    pod = manifests.pod("dev", "dev-head", 0, s, image="py", cpus=2, memory_gb=8, gpus=1,
                        affinity_terms=terms)  # fmt: skip
    c = pod["spec"]["containers"][0]
    assert c["resources"]["requests"] == {"cpu": "2000m", "memory": "8192Mi", "nvidia.com/gpu": "1"}
    assert c["resources"]["limits"]["cpu"] == "3000m"
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert c["env"] == [{"name": "A", "value": "1"}]  # pod_config's container merged in
    assert pod["spec"]["tolerations"] == [{"key": "gpu"}]
    assert pod["metadata"]["name"] == "dev-head"  # pod_config never renames the pod
    assert pod["metadata"]["labels"][manifests.CLUSTER_LABEL] == "dev"
    assert pod["metadata"]["labels"]["team"] == "x"
    assert pod["spec"]["serviceAccountName"] == "dev-styx"
    worker = manifests.pod("dev", "dev-worker-1", 1, _settings(), image="py", cpus=1, memory_gb=2)
    assert worker["spec"]["automountServiceAccountToken"] is False
    assert "limits" not in worker["spec"]["containers"][0]["resources"]


def test_role_is_least_privilege() -> None:
    rules = manifests.role("dev", _settings())["rules"]
    verbs = {(r, v) for rule in rules for r in rule["resources"] for v in rule["verbs"]}
    assert verbs == {
        ("pods", "get"), ("pods", "list"), ("pods", "delete"),
        ("services", "list"), ("services", "delete"), ("secrets", "list"), ("secrets", "delete"),
    }  # fmt: skip
    assert all(rule["apiGroups"] == [""] for rule in rules)


def test_ports_expand() -> None:
    assert manifests.expand_ports(["8080", "9000-9002"]) == [8080, 9000, 9001, 9002]


@pytest.mark.parametrize(
    ("label", "value", "name"),
    [
        ("skypilot.co/accelerator", "a100-80gb", "A100-80GB"),
        ("skypilot.co/accelerator", "h100", "H100"),
        ("cloud.google.com/gke-accelerator", "nvidia-tesla-t4", "T4"),
        ("cloud.google.com/gke-accelerator", "nvidia-l4", "L4"),
        ("cloud.google.com/gke-accelerator", "nvidia-h100-80gb", "H100-80GB"),
        ("nvidia.com/gpu.product", "NVIDIA-A100-SXM4-80GB", "A100-80GB"),
        ("nvidia.com/gpu.product", "NVIDIA-A100-SXM4-40GB", "A100"),
        ("nvidia.com/gpu.product", "Tesla-T4", "T4"),
        ("nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3", "H100"),
        ("nvidia.com/gpu.product", "NVIDIA-GeForce-RTX-4090", "RTX4090"),
    ],
)
def test_gpu_label_values(label: str, value: str, name: str) -> None:
    assert gpus.canonical(label, value) == name


def _node(name: str, labels: dict[str, str], alloc: dict[str, str]) -> SimpleNamespace:
    return SimpleNamespace(
        metadata=SimpleNamespace(name=name, labels=labels),
        status=SimpleNamespace(allocatable=alloc),
    )


def test_node_gpus_free_and_affinity_terms() -> None:
    nodes = [
        _node("g1", {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
              {"cpu": "32", "memory": "128Gi", "nvidia.com/gpu": "8"}),
        _node("g2", {"skypilot.co/accelerator": "a100-80gb"},
              {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": "4"}),
        _node("c1", {}, {"cpu": "8", "memory": "32Gi"}),
    ]  # fmt: skip
    busy = SimpleNamespace(
        status=SimpleNamespace(phase="Running"),
        spec=SimpleNamespace(
            node_name="g1",
            containers=[
                SimpleNamespace(resources=SimpleNamespace(requests={"nvidia.com/gpu": "3"}))
            ],
        ),
    )
    found = {g.node: g for g in gpus.node_gpus(nodes, [busy])}
    assert (
        found["g1"].accelerator == "A100-80GB" and found["g1"].free == 5 and found["g1"].total == 8
    )
    assert found["c1"].accelerator is None and found["c1"].cpus == 8 and found["c1"].memory_gb == 32
    terms = gpus.matching_terms(list(found.values()), "a100-80gb")
    keys = {t["matchExpressions"][0]["key"]: t["matchExpressions"][0]["values"] for t in terms}
    assert keys == {
        "nvidia.com/gpu.product": ["NVIDIA-A100-SXM4-80GB"],
        "skypilot.co/accelerator": ["a100-80gb"],
    }
    assert gpus.resource_for("MI300X") == "amd.com/gpu"
    assert gpus.quantity("500m") == 0.5 and gpus.quantity("4Gi") == 4 * 2**30


def test_merge_and_pricing() -> None:
    assert merge({"a": {"b": 1}, "l": [{"x": 1}]}, {"a": {"c": 2}, "l": [{"y": 2}, 3]}) == {
        "a": {"b": 1, "c": 2},
        "l": [{"x": 1, "y": 2}, 3],
    }
    s = _settings(pricing={"cpu": 0.05, "memory": 0.01, "accelerators": {"A100": 3.5}})
    assert s.hourly_price(4, 16, {}) == pytest.approx(0.36)
    assert s.hourly_price(4, 16, {"a100": 2}) == pytest.approx(7.0)
    assert _settings().hourly_price(4, 16, {}) == 0.0


def test_settings_layers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "styx"
    home.mkdir()
    (home / "config.yaml").write_text(
        "kubernetes:\n  namespace: team\n  provision_timeout: 30\n  set_pod_resource_limits: true\n"
        "  pod_config: {spec: {priorityClassName: low}}\n"
        "  context_configs:\n    other: {namespace: o, provision_timeout: -1}\n"
    )
    monkeypatch.setenv("STYX_HOME", str(home))
    s = K8sSettings.load("main", "ctxns", {"kubernetes": {"provision_timeout": 5}})
    assert (s.namespace, s.provision_timeout, s.limits) == ("team", 5.0, 1.0)
    assert s.pod_config == {"spec": {"priorityClassName": "low"}}
    o = K8sSettings.load("other", None)
    assert (o.namespace, o.provision_timeout) == ("o", None)


def _kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = {
        "current-context": "a",
        "contexts": [
            {"name": "a", "context": {"cluster": "ca", "user": "u", "namespace": "nsa"}},
            {"name": "b", "context": {"cluster": "cb", "user": "u"}},
        ],
        "clusters": [{"name": "ca", "cluster": {"server": "https://127.0.0.1:1"}}],
    }
    path = tmp_path / "kc"
    path.write_text(json.dumps(cfg))
    monkeypatch.setenv("KUBECONFIG", f"{path}{os.pathsep}{tmp_path / 'missing'}")


def test_kubeconfig_contexts_and_allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _kubeconfig(tmp_path, monkeypatch)
    config = kubeconfig.load()
    assert config.current == "a" and config.contexts["a"].namespace == "nsa"
    assert config.contexts["a"].server == "https://127.0.0.1:1"
    assert kubeconfig.allowed(config, None) == ["a"]
    assert kubeconfig.allowed(config, "all") == ["a", "b"]
    assert kubeconfig.allowed(config, ["b", "zzz"]) == ["b"]
    assert kubeconfig.resolve(None, None) == "a"
    with pytest.raises(NotFoundError) as e:
        kubeconfig.resolve("zzz", None)
    assert e.value.code == "k8s-context-not-found"
    with pytest.raises(NotFoundError) as e:
        kubeconfig.resolve("b", ["a"])
    assert e.value.code == "k8s-context-not-allowed"


class ApiException(Exception):  # the client's class name is what translate() looks for
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.body = json.dumps({"kind": "Status", "reason": reason, "message": message})


def test_errors_by_status() -> None:
    auth = translate(ApiException(403, "Forbidden", "no"), "ctx", "creating a pod")
    assert isinstance(auth, AuthFailed) and auth.scope is not None and auth.scope.value == "region"
    assert isinstance(translate(ApiException(404, "NotFound", "x"), "c", "a"), NotFoundError)
    assert isinstance(translate(ApiException(409, "AlreadyExists", "x"), "c", "a"), ConflictError)
    bad = translate(ApiException(422, "Invalid", "spec.containers: bad"), "c", "a")
    assert isinstance(bad, UsageError) and bad.code == "k8s-object-rejected"
    down = translate(ConnectionRefusedError(111, "refused"), "c", "a")
    assert isinstance(down, RemoteError) and down.code == "cloud-api-unreachable"
    assert down.details["retryable"] is True


def test_python_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYX_WHEELHOUSE", "/w")
    lines = ["/usr/bin/python3.13 3.13 ok", "/usr/bin/python3 3.11 no", "/opt/py 3.11 ok"]
    assert _fitting_python(lines) == "/opt/py"  # this Python's version, with venv and pip
    assert _fitting_python(["/usr/bin/python3 3.9 ok"]) is None
    monkeypatch.delenv("STYX_WHEELHOUSE")
    assert _fitting_python(lines) == "/usr/bin/python3.13"


def test_image_and_prologue() -> None:
    s = _settings()
    assert (
        _image("docker:nvcr.io/nvidia/pytorch:24.01-py3", s) == "nvcr.io/nvidia/pytorch:24.01-py3"
    )
    assert _image(None, s) == "img"
    assert env_prologue(["ls"], None, None) == ["ls"]
    argv = env_prologue(["ls", "-l"], {"A": "1 2"}, "/w d")
    assert argv[:3] == ["env", "A=1 2", "STYX_CWD=/w d"] and argv[-2:] == ["ls", "-l"]


def test_relocate_rewrites_run_path(tmp_path: Path) -> None:
    from styx.cluster.portable_python import _relocate

    binary = tmp_path / "python3.11"
    binary.write_bytes(b"\x7fELF....RUNPATH:/opt/py/3.11/lib\0rest")
    binary.chmod(0o755)
    _relocate(binary, "/opt/py/3.11")
    data = binary.read_bytes()
    assert b"$ORIGIN/../lib\0" in data and b"/opt/py" not in data
    assert len(data) == len(b"\x7fELF....RUNPATH:/opt/py/3.11/lib\0rest")
    assert os.access(binary, os.X_OK)
