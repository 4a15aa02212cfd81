"""Clients of a context's API server, made once per process from the kubeconfig.

Every call Styx makes has a deadline (:data:`TIMEOUT`: connect, read), and the client retries
a failed connection once only, so an API server that is down is reported within seconds.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from styx.providers.kubernetes import kubeconfig

#: (connect, read) seconds for each API call.
TIMEOUT = (5.0, 30.0)

_LOCK = threading.Lock()
_CLIENTS: dict[tuple[str, str], Any] = {}


def api_client(context: str) -> Any:
    """An ``ApiClient`` for ``context`` (kubeconfig credentials; in a pod without a kubeconfig,
    the pod's service account)."""
    files = os.pathsep.join(str(p) for p in kubeconfig.paths())
    key = (context, files)
    with _LOCK:
        if key in _CLIENTS:
            return _CLIENTS[key]
    from kubernetes import client, config  # type: ignore[import-untyped,unused-ignore]

    configuration = client.Configuration()
    if context == IN_CLUSTER:
        config.load_incluster_config(client_configuration=configuration)
    else:
        config.load_kube_config(
            config_file=files, context=context, client_configuration=configuration,
            persist_config=False,
        )  # fmt: skip
    configuration.retries = 1
    api = client.ApiClient(configuration)
    with _LOCK:
        _CLIENTS[key] = api
    return api


#: The context name that means "this pod's service account" (autostop on the head pod).
IN_CLUSTER = "in-cluster"


def core(context: str) -> Any:
    from kubernetes import client

    return client.CoreV1Api(api_client(context))


def exec_core(context: str) -> Any:
    """A CoreV1Api on a client of its own, for one exec: the official ``stream()`` swaps the
    client's request method while it runs, so a shared client would send other threads'
    calls down the websocket."""
    from kubernetes import client

    return client.CoreV1Api(client.ApiClient(api_client(context).configuration))


def rbac(context: str) -> Any:
    from kubernetes import client

    return client.RbacAuthorizationV1Api(api_client(context))


def version(context: str, timeout: float = 3.0) -> str:
    """The API server's version (``/version``), within ``timeout`` seconds."""
    from kubernetes import client

    info = client.VersionApi(api_client(context)).get_code(_request_timeout=(timeout, timeout))
    return str(getattr(info, "git_version", "") or "unknown")


def forget() -> None:
    """Drop the cached clients (tests switch kubeconfigs)."""
    with _LOCK:
        _CLIENTS.clear()
