"""Autostop's down from inside the cluster: the head pod deletes its own cluster.

``python -m styx.providers.kubernetes.selfdown NAMESPACE SELECTOR HEAD_POD`` runs on the head
pod (the agent runs it when the cluster has been idle long enough), with the pod's service
account: the token, CA and API address Kubernetes gives every pod. Its Role allows exactly
this: list and delete the cluster's pods, services and secrets. The worker pods, services and
secrets go first, the head pod last; the service account, role and binding are owned by the
head pod, so the garbage collector removes them with it. Standard library only: the runtime
needs no Kubernetes client for this.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
TIMEOUT = 30.0


class Api:
    def __init__(self) -> None:
        host = os.environ["KUBERNETES_SERVICE_HOST"]
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if ":" in host:
            host = f"[{host}]"
        self.base = f"https://{host}:{port}"
        with open(f"{ACCOUNT}/token") as f:
            self.token = f.read().strip()
        self.tls = ssl.create_default_context(cafile=f"{ACCOUNT}/ca.crt")

    def call(self, method: str, path: str, query: dict[str, str] | None = None) -> Any:
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        request = urllib.request.Request(url, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT, context=self.tls) as answer:
                return json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return {}
            raise


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        sys.stderr.write("usage: selfdown NAMESPACE SELECTOR HEAD_POD\n")
        return 2
    namespace, selector, head = argv
    api = Api()
    base = f"/api/v1/namespaces/{urllib.parse.quote(namespace)}"
    for kind in ("pods", "services", "secrets"):
        listed = api.call("GET", f"{base}/{kind}", {"labelSelector": selector})
        for item in listed.get("items") or []:
            name = item["metadata"]["name"]
            if kind == "pods" and name == head:
                continue
            api.call("DELETE", f"{base}/{kind}/{urllib.parse.quote(name)}")
    api.call("DELETE", f"{base}/pods/{urllib.parse.quote(head)}", {"gracePeriodSeconds": "0"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
