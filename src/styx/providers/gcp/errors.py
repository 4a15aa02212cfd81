"""Compute Engine errors translated into Styx's typed errors, by error *code*, never by text.

GCE reports a failure in one of two places: the HTTP answer to a call (google-api-core raises a
``GoogleAPICallError`` whose ``errors`` list carries each error's ``reason``), or, for work it
accepted, the finished operation (``operation.error.errors[i].code``, e.g.
``ZONE_RESOURCE_POOL_EXHAUSTED``). Both are read here, by code or reason:

=================================================  ======================  =========
GCE code / reason                                  Styx error              scope
=================================================  ======================  =========
stockouts (``ZONE_RESOURCE_POOL_EXHAUSTED``, ...)   NoCapacity              zone
a type or accelerator not offered in the zone      NoCapacity              zone
``QUOTA_EXCEEDED`` / ``quotaExceeded``               QuotaExceeded           region
  a quota with no region (``GPUS_ALL_REGIONS``)    QuotaExceeded           cloud
HTTP 401, 403 without a quota reason, no creds     AuthFailed              cloud
429, ``rateLimitExceeded``, 5xx, a dropped call    RemoteError (retry)     none
anything else                                      RemoteError             none
=================================================  ======================  =========

Whether a quota is regional comes from the error's ``quotaInfo`` details (its dimensions name a
region) where GCE gives them, and from the quota's metric name otherwise: ``*_ALL_REGIONS``
quotas are the project's, so no region of GCP will do better.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from styx.errors import (
    AuthFailed,
    FailoverScope,
    NoCapacity,
    QuotaExceeded,
    RemoteError,
    StyxError,
)

#: The zone cannot hold the request now: try another zone.
CAPACITY_CODES = frozenset(
    {
        "ZONE_RESOURCE_POOL_EXHAUSTED",
        "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
        "REGION_RESOURCE_POOL_EXHAUSTED",
        "RESOURCE_POOL_EXHAUSTED",
        "STOCKOUT",
        "RESOURCE_NOT_AVAILABLE",
        "UNSUPPORTED_OPERATION",  # e.g. a machine type and accelerator that zone cannot pair
    }
)
#: What was asked for does not exist in the zone (a type or accelerator not offered there).
NOT_OFFERED_CODES = frozenset({"RESOURCE_NOT_FOUND", "notFound"})
QUOTA_CODES = frozenset({"QUOTA_EXCEEDED", "quotaExceeded", "QUOTA_LIMIT"})
AUTH_REASONS = frozenset(
    {
        "forbidden",
        "accessNotConfigured",
        "SERVICE_DISABLED",
        "IAM_PERMISSION_DENIED",
        "insufficientPermissions",
        "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
        "authError",
        "required",
        "unauthorized",
        "PERMISSION_DENIED",
        "CREDENTIALS_MISSING",
    }
)
THROTTLE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED"})


def _details(region: str, zone: str | None, code: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"cloud": "gcp", "region": region}
    if zone:
        out["zone"] = zone
    if code:
        out["gcp_code"] = code
    return out


def _quota_scope(errors: Iterable[dict[str, Any]]) -> FailoverScope:
    """REGION unless the quota is the project's across regions (see the module docstring)."""
    for err in errors:
        for detail in err.get("errorDetails") or err.get("error_details") or ():
            info = detail.get("quotaInfo") or detail.get("quota_info") or {}
            dims = info.get("dimensions") or {}
            metric = str(info.get("metricName") or info.get("metric_name") or "")
            limit = str(info.get("limitName") or info.get("limit_name") or "")
            if "region" in dims:
                return FailoverScope.REGION
            if metric.upper().endswith("ALL_REGIONS") or "GLOBAL" in limit.upper():
                return FailoverScope.CLOUD
    return FailoverScope.REGION


def from_codes(
    codes: list[dict[str, Any]],
    *,
    region: str,
    zone: str | None,
    action: str,
    status: int | None = None,
) -> StyxError:
    """The Styx error for GCE's errors (each a dict with ``code`` or ``reason``, ``message``,
    and maybe ``errorDetails``), from an operation or an HTTP answer."""
    where = f"{region}/{zone}" if zone else region
    names = [str(e.get("code") or e.get("reason") or "") for e in codes]
    first = next((n for n in names if n), None)
    message = next((str(e.get("message")) for e in codes if e.get("message")), first or "")
    said = f"GCE said {first}: {message}" if first else f"GCE said: {message or status}"
    details = _details(region, zone, first)
    if any(n in CAPACITY_CODES for n in names):
        return NoCapacity(
            f"No capacity in {where} while {action} ({said}).",
            scope=FailoverScope.ZONE,
            details=details,
        )
    if any(n in QUOTA_CODES for n in names):
        scope = _quota_scope(codes)
        whose = f"region {region}" if scope is FailoverScope.REGION else "the project"
        return QuotaExceeded(
            f"A GCP quota of {whose} is exhausted while {action} ({said}).",
            "Ask for a larger quota (IAM & Admin > Quotas), or use another region.",
            scope=scope,
            details=details,
        )
    if status == 401 or any(n in AUTH_REASONS for n in names) or (status == 403 and not names):
        return AuthFailed(
            f"GCP refused the credentials while {action} in {region} ({said}).",
            "Check the credentials and the project's IAM roles with `styx check gcp --probe`.",
            scope=FailoverScope.CLOUD,
            details=details,
        )
    if any(n in NOT_OFFERED_CODES for n in names) and zone:
        return NoCapacity(
            f"{where} does not offer what was asked for while {action} ({said}).",
            scope=FailoverScope.ZONE,
            details=details,
        )
    if status == 429 or any(n in THROTTLE_REASONS for n in names) or (status or 0) >= 500:
        return RemoteError(
            f"The GCE API failed for now while {action} in {where} ({said}).",
            "Wait a minute and retry.",
            code="cloud-throttled" if status == 429 else "cloud-api-error",
            details={**details, "retryable": True},
        )
    return RemoteError(
        f"GCE failed while {action} in {where} ({said}).",
        "Check the request (machine type, image, network config) and retry.",
        code="cloud-api-error",
        details=details,
    )


def operation_error(op: Any, *, region: str, zone: str | None, action: str) -> StyxError | None:
    """The error of a finished operation (a compute_v1 ``Operation``), or None if it
    succeeded."""
    error = getattr(op, "error", None)
    items = list(getattr(error, "errors", None) or ())
    if not items:
        return None
    codes = []
    for item in items:
        entry: dict[str, Any] = {"code": item.code, "message": item.message}
        extra = []
        for d in getattr(item, "error_details", None) or ():
            q = getattr(d, "quota_info", None)
            if q is not None and getattr(q, "metric_name", ""):
                extra.append({"quotaInfo": {"metricName": q.metric_name, "limitName": q.limit_name,
                                            "dimensions": dict(q.dimensions)}})  # fmt: skip
        if extra:
            entry["errorDetails"] = extra
        codes.append(entry)
    status = int(getattr(op, "http_error_status_code", 0) or 0) or None
    return from_codes(codes, region=region, zone=zone, action=action, status=status)


def translate(
    exc: BaseException, *, region: str, zone: str | None = None, action: str = "calling GCE"
) -> StyxError:
    """The Styx error for an exception of google-api-core or google-auth."""
    from google.api_core import exceptions as gx  # type: ignore[import-untyped,import-not-found,unused-ignore]
    from google.auth import exceptions as ax  # type: ignore[import-untyped,import-not-found,unused-ignore]

    if isinstance(exc, StyxError):
        return exc
    if isinstance(exc, ax.DefaultCredentialsError | ax.RefreshError):
        return AuthFailed(
            f"No usable GCP credentials while {action}: {type(exc).__name__}.",
            "Run `gcloud auth application-default login` (or set "
            "GOOGLE_APPLICATION_CREDENTIALS), then `styx check gcp`.",
            scope=FailoverScope.CLOUD,
            details=_details(region, zone, type(exc).__name__),
        )
    if isinstance(exc, gx.GoogleAPICallError):
        raw = list(getattr(exc, "errors", None) or ())
        codes = [e if isinstance(e, dict) else {"reason": str(e)} for e in raw]
        reason = getattr(exc, "reason", None)
        if reason:
            codes.append({"reason": str(reason), "message": exc.message})
        if not codes:
            codes = [{"message": exc.message}]
        status = int(exc.code) if isinstance(exc.code, int) else None
        return from_codes(codes, region=region, zone=zone, action=action, status=status)
    if isinstance(exc, gx.RetryError | OSError | TimeoutError):
        return RemoteError(
            f"The GCE API could not be reached while {action} in {region}: {type(exc).__name__}.",
            "Check the network, then retry.",
            code="cloud-api-unreachable",
            details={**_details(region, zone, type(exc).__name__), "retryable": True},
        )
    return RemoteError(
        f"The GCE client failed while {action} in {region}: {type(exc).__name__}.",
        "Retry; run with --debug to see the SDK's error.",
        code="cloud-api-error",
        details=_details(region, zone, type(exc).__name__),
    )


@contextmanager
def translated(region: str, zone: str | None = None, action: str = "calling GCE") -> Iterator[None]:
    """Translate SDK errors raised inside the block (``raise ... from`` the original)."""
    import requests  # type: ignore[import-untyped,import-not-found,unused-ignore]
    from google.api_core.exceptions import GoogleAPIError  # type: ignore[import-untyped,import-not-found,unused-ignore]
    from google.auth.exceptions import GoogleAuthError  # type: ignore[import-untyped,import-not-found,unused-ignore]

    try:
        yield
    except (GoogleAPIError, GoogleAuthError, requests.RequestException) as exc:
        raise translate(exc, region=region, zone=zone, action=action) from exc
