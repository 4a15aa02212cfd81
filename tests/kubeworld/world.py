"""The Kubernetes stand-in as the tests use it: API server, kubelet, bridge and a kubeconfig.
It stands in for a real cluster; see tests/kubeworld/README.md."""

from __future__ import annotations

import base64
import json
import socket
import time
from pathlib import Path
from typing import Any

import yaml

from testworld.nshost import Bridge

from .apiserver import ADMIN, ApiServer
from .certs import make_certs
from .kubelet import Kubelet, image_ready
from .slot import KubeSlot

CONTEXT = "styx-test"
UNREACHABLE = "styx-unreachable"


class KubeWorld:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.slot = KubeSlot().claim()
        self.bridge = Bridge(self.slot.bridge).ensure()
        self.bridge.add_address(f"{self.slot.gateway}/24")
        certs = make_certs(root / "certs", [self.slot.gateway])
        self.ca_pem = certs.ca_pem
        self.api = ApiServer(self.slot.gateway, 0, certs).start()
        self.kubelet = Kubelet(self.api, self.slot, self.bridge, root / "pods")
        (root / "pods").mkdir(exist_ok=True)

    def close(self) -> None:
        self.kubelet.kill_all()
        self.api.stop()
        self.bridge.remove()

    # --- per test ----------------------------------------------------------------------------

    def reset(self, home: Path) -> None:
        for ns, name in list(self.kubelet.hosts):
            self.kubelet._kill(ns, name)
        self.api.store.reset()
        self.kubelet.start_seconds.clear()
        for i in range(2):
            self.add_node(f"node-{i}", cpu=8, memory="32Gi")
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()  # nothing listens there
        ca = base64.b64encode(self.ca_pem).decode()
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": CONTEXT,
            "clusters": [
                {"name": CONTEXT, "cluster": {"server": self.api.url, "certificate-authority-data": ca}},
                {"name": UNREACHABLE, "cluster": {"server": f"https://127.0.0.1:{port}", "certificate-authority-data": ca}},
            ],
            "users": [{"name": "admin", "user": {"token": ADMIN}}],
            "contexts": [
                {"name": CONTEXT, "context": {"cluster": CONTEXT, "user": "admin", "namespace": "default"}},
                {"name": UNREACHABLE, "context": {"cluster": UNREACHABLE, "user": "admin"}},
            ],
        }  # fmt: skip
        self.kubeconfig = home / ".kube" / "config"
        self.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.context = CONTEXT

    def core(self) -> Any:
        from kubernetes import client, config

        return client.CoreV1Api(
            config.new_client_from_config(str(self.kubeconfig), context=CONTEXT)
        )

    def add_node(self, name: str, *, cpu: float, memory: str, gpus: int = 0,
                 gpu_resource: str = "nvidia.com/gpu", labels: dict[str, str] | None = None) -> None:  # fmt: skip
        alloc = {"cpu": str(cpu), "memory": memory, "pods": "110"}
        if gpus:
            alloc[gpu_resource] = str(gpus)
        self.api.store.put("nodes", "", {
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "status": {"allocatable": alloc, "capacity": alloc, "conditions": [{"type": "Ready", "status": "True"}]},
        })  # fmt: skip

    def nodes(self) -> list[dict[str, Any]]:
        return self.api.store.items("nodes")

    def pods(self, ns: str | None = None) -> list[dict[str, Any]]:
        return [json.loads(json.dumps({k: v for k, v in p.items() if not k.startswith("_")}))
                for p in self.api.store.items("pods", ns)]  # fmt: skip

    def delete_pod(self, name: str, ns: str = "default") -> None:
        self.api.store.delete("pods", ns, name)

    def stop_api(self) -> None:
        self.api.stop()

    def start_api(self) -> None:
        self.api.start()

    def requests(self) -> list[dict[str, Any]]:
        return list(self.api.store.log)

    def has_image(self, image: str) -> bool:
        return image_ready(image)

    def pod_start_seconds(self) -> dict[str, float]:
        return dict(self.kubelet.start_seconds)

    def leftovers(self) -> list[str]:
        keep = {("namespaces", "default")} | {
            ("nodes", n["metadata"]["name"]) for n in self.nodes()
        }
        out = [f"{p} {ns}/{name}" for (p, ns, name) in self.api.store.objects
               if (p, name) not in keep and p != "events"]  # fmt: skip
        out += [f"host {ns}/{name}" for ns, name in self.kubelet.hosts]
        return out

    def assert_no_leaks(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while (left := self.leftovers()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left, f"left in the Kubernetes stand-in: {left}"
