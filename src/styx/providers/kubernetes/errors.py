"""Kubernetes API errors translated into Styx's typed errors, by HTTP status and the Status
object's ``reason``, never by message text.

A context plays the part of a cloud region: what fails on it blocks that context (scope
``REGION``), and the launch moves to the next context or other infra.

==========================================  =====================  ======
API answer                                   Styx error             scope
==========================================  =====================  ======
401, 403 (Unauthorized, Forbidden)           AuthFailed             region
403 reason Forbidden with quota exceeded     QuotaExceeded          region
  (``details.causes`` / ``reason`` code)
404 (NotFound)                               NotFoundError          -
409 (AlreadyExists, Conflict)                ConflictError          -
400, 422 (BadRequest, Invalid)               UsageError             -
429, 5xx, connection refused, timeouts       RemoteError            (retry)
==========================================  =====================  ======

At provisioning, an API server that cannot be reached is a ``ResourcesUnavailable``
(``k8s-api-unreachable``, scope region): the context is left for the next place.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from styx.errors import (
    AuthFailed,
    ConflictError,
    FailoverScope,
    NotFoundError,
    QuotaExceeded,
    RemoteError,
    ResourcesUnavailable,
    StyxError,
    UsageError,
)


def status_of(exc: BaseException) -> tuple[int | None, str, str]:
    """(HTTP status, Status reason, message) of an ``ApiException``; (None, '', text) else."""
    status = getattr(exc, "status", None)
    body = getattr(exc, "body", None)
    reason, message = "", str(getattr(exc, "reason", "") or exc)
    if body:
        try:
            data = json.loads(body)
        except (TypeError, ValueError):
            data = None
        if isinstance(data, dict):
            reason = str(data.get("reason") or "")
            message = str(data.get("message") or message)
    return (int(status) if isinstance(status, int) and status else None), reason, message


def is_api_exception(exc: BaseException) -> bool:
    return type(exc).__name__ == "ApiException" and hasattr(exc, "status")


def is_transport_error(exc: BaseException) -> bool:
    """Whether ``exc`` means the API server did not answer (refused, reset, timed out)."""
    module = type(exc).__module__ or ""
    return module.startswith(("urllib3", "websocket", "ssl")) or isinstance(
        exc, ConnectionError | TimeoutError | OSError
    )


def translate(exc: BaseException, context: str, action: str) -> StyxError:
    """The Styx error for ``exc``, raised while ``action`` on ``context``."""
    where = f"Kubernetes context '{context}'"
    details: dict[str, Any] = {"cloud": "kubernetes", "region": context}
    if is_api_exception(exc):
        status, reason, message = status_of(exc)
        details.update(k8s_status=status, k8s_reason=reason)
        if status == 403 and "exceeded quota" in reason.lower():  # reason, not the message
            return QuotaExceeded(
                f"{where} refused {action}: a resource quota is exhausted ({message}).",
                "Free quota in the namespace, ask for more, or use another context.",
                details=details,
            )
        if status in (401, 403):
            return AuthFailed(
                f"{where} refused {action} ({status} {reason or 'Forbidden'}): {message}",
                "Check the kubeconfig's credentials and your RBAC permissions in the namespace.",
                scope=FailoverScope.REGION,
                details=details,
            )
        if status == 404:
            return NotFoundError(
                f"{where}: {message} (while {action}).",
                "Check the namespace exists (`kubernetes.namespace`), or relaunch the cluster.",
                details=details,
            )
        if status == 409:
            return ConflictError(
                f"{where} refused {action}: {message}",
                "Another object of that name exists; `styx down` the cluster or use another name.",
                details=details,
            )
        if status in (400, 422):
            return UsageError(
                f"{where} rejected {action}: {message}",
                "Fix the pod settings (`kubernetes.pod_config`, `image_id`, resources).",
                code="k8s-object-rejected",
                details=details,
            )
        err = RemoteError(
            f"{where} failed {action} ({status} {reason}): {message}",
            "Retry; if it persists, check the API server's health.",
            code="cloud-api-error",
            details={**details, "retryable": status is None or status == 429 or status >= 500},
        )
        return err
    return RemoteError(
        f"The API server of {where} did not answer while {action}: {exc}.",
        "Check that the cluster is reachable (`kubectl --context "
        f"{context} get nodes`), then retry.",
        code="cloud-api-unreachable",
        details={**details, "retryable": True},
    )


@contextmanager
def translated(context: str, action: str, *, provisioning: bool = False) -> Iterator[None]:
    """Raise Styx errors for the API errors of the block. With ``provisioning``, an
    unreachable or failing API server is a reason to leave the context
    (``ResourcesUnavailable`` with scope region)."""
    try:
        yield
    except StyxError:
        raise
    except Exception as exc:
        if not (is_api_exception(exc) or is_transport_error(exc)):
            raise
        err = translate(exc, context, action)
        if provisioning and err.code in ("cloud-api-unreachable", "cloud-api-error"):
            raise ResourcesUnavailable(
                err.message,
                "Styx tries other places; check the cluster with `styx check kubernetes`.",
                code="k8s-api-unreachable",
                scope=FailoverScope.REGION,
                details=err.details,
            ) from exc
        raise err from exc
