"""The user's kubeconfig, read as files only (no Kubernetes client imported): its contexts, the
current one, and each context's namespace and server.

``KUBECONFIG`` may list several files (``:``-separated); as kubectl does, the first file that
names a context, a cluster or ``current-context`` wins. Which contexts Styx may use comes from
``kubernetes.allowed_contexts`` (a list, or ``all``); without it, only the current context.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from styx.errors import NotFoundError


@dataclasses.dataclass(frozen=True, slots=True)
class Context:
    """One kubeconfig context."""

    name: str
    cluster: str
    user: str
    namespace: str | None
    server: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class KubeConfig:
    contexts: dict[str, Context]
    current: str | None
    files: tuple[str, ...]


def paths() -> list[Path]:
    """The kubeconfig files, in the order they are merged."""
    raw = os.environ.get("KUBECONFIG")
    if raw:
        return [Path(p).expanduser() for p in raw.split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


def load() -> KubeConfig:
    """The merged kubeconfig (empty when there is none or it cannot be read)."""
    import yaml

    contexts: dict[str, dict[str, Any]] = {}
    clusters: dict[str, dict[str, Any]] = {}
    current: str | None = None
    files: list[str] = []
    for path in paths():
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        if not isinstance(data, dict):
            continue
        files.append(str(path))
        current = current or (str(data["current-context"]) if data.get("current-context") else None)
        for entry in data.get("contexts") or []:
            if isinstance(entry, dict) and entry.get("name"):
                contexts.setdefault(str(entry["name"]), entry.get("context") or {})
        for entry in data.get("clusters") or []:
            if isinstance(entry, dict) and entry.get("name"):
                clusters.setdefault(str(entry["name"]), entry.get("cluster") or {})
    out = {}
    for name, ctx in contexts.items():
        cluster = str(ctx.get("cluster") or "")
        server = clusters.get(cluster, {}).get("server")
        out[name] = Context(
            name=name,
            cluster=cluster,
            user=str(ctx.get("user") or ""),
            namespace=str(ctx["namespace"]) if ctx.get("namespace") else None,
            server=str(server) if server else None,
        )
    return KubeConfig(out, current if current in out else None, tuple(files))


def allowed(config: KubeConfig, allowed_contexts: object) -> list[str]:
    """The contexts Styx may launch on: those of ``kubernetes.allowed_contexts`` that exist
    (``all``: every context), else the current context."""
    if allowed_contexts == "all":
        return sorted(config.contexts)
    if isinstance(allowed_contexts, list | tuple):
        return [str(c) for c in allowed_contexts if str(c) in config.contexts]
    return [config.current] if config.current else []


def resolve(context: str | None, allowed_contexts: object) -> str:
    """The context a launch uses: the one named (``k8s/<context>``), else the first allowed."""
    config = load()
    names = allowed(config, allowed_contexts)
    if context is None:
        if not names:
            raise NotFoundError(
                "No Kubernetes context is usable: the kubeconfig has no current context and "
                "`kubernetes.allowed_contexts` names none that exists.",
                "Set a current context (`kubectl config use-context NAME`) or list contexts in "
                "`kubernetes.allowed_contexts` of ~/.styx/config.yaml.",
                code="k8s-context-not-found",
            )
        return names[0]
    if context not in config.contexts:
        known = ", ".join(sorted(config.contexts)) or "none"
        raise NotFoundError(
            f"There is no Kubernetes context named '{context}' in the kubeconfig "
            f"(contexts: {known}).",
            "Use one of those contexts (`infra: k8s/<context>`), or add it to the kubeconfig.",
            code="k8s-context-not-found",
        )
    if context not in names:
        raise NotFoundError(
            f"The Kubernetes context '{context}' is not in `kubernetes.allowed_contexts`.",
            "Add it to `kubernetes.allowed_contexts` in ~/.styx/config.yaml, or use another.",
            code="k8s-context-not-allowed",
        )
    return context
