"""The one place boto3 clients are made, with retries and timeouts set explicitly.

boto3 is imported here, inside functions, so that ``import styx.providers.aws`` stays cheap.
Clients follow boto3's standard credential chain and honour ``AWS_ENDPOINT_URL`` natively
(the tests point it at moto on 127.0.0.1).

botocore's default retry policy retries a 500 several times with backoff: one injected server
error then costs ~7 s before it surfaces. Styx fails over between zones and regions itself, so
each call gets two attempts in total, and short connect/read timeouts. EC2 answers a capacity
error with HTTP 500, which botocore would retry in the same zone; such errors (capacity, quota,
credentials) are never retried here: the next zone is the retry.
"""

from __future__ import annotations

import os
import threading
from typing import Any

#: Attempts per API call, first try included (botocore's ``total_max_attempts``).
TOTAL_MAX_ATTEMPTS = 2
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0

_lock = threading.Lock()
_clients: dict[tuple[str, str, str], Any] = {}


def _config() -> Any:
    from botocore.config import Config  # type: ignore[import-untyped,import-not-found,unused-ignore]

    return Config(
        retries={"total_max_attempts": TOTAL_MAX_ATTEMPTS, "mode": "standard"},
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        max_pool_connections=32,  # nodes are waited for and set up in parallel
    )


def client(service: str, region: str) -> Any:
    """A boto3 client for ``service`` in ``region``, shared per process (clients are
    thread-safe; sessions are not, so each client is made under a lock)."""
    key = (service, region, os.environ.get("AWS_ENDPOINT_URL", ""))
    found = _clients.get(key)
    if found is not None:
        return found
    with _lock:
        found = _clients.get(key)
        if found is None:
            found = new_client(service, region)
            _clients[key] = found
        return found


def new_client(service: str, region: str, session: Any = None) -> Any:
    """A fresh (not shared) boto3 client for ``service`` in ``region`` with this module's
    retries and timeouts, from ``session`` (a ``boto3.Session``; a new default one if None)."""
    if session is None:
        import boto3  # type: ignore[import-untyped,import-not-found,unused-ignore]

        session = boto3.session.Session()
    made = session.client(service, region_name=region, config=_config())
    # Before botocore's own retry handler, so its "no" wins.
    made.meta.events.register_first(f"needs-retry.{service}", _final_errors_not_retried)
    return made


def _final_errors_not_retried(response: Any = None, **_: Any) -> bool | None:
    """False (do not retry) for errors another attempt cannot fix; None leaves it to botocore."""
    from styx.providers.aws.errors import AUTH_CODES, CAPACITY_CODES, QUOTA_CODES

    if not isinstance(response, tuple) or len(response) != 2:
        return None
    code = ((response[1] or {}).get("Error") or {}).get("Code")
    if code in CAPACITY_CODES or code in QUOTA_CODES or code in AUTH_CODES:
        return False
    return None


def ec2(region: str) -> Any:
    """The EC2 client of ``region``."""
    return client("ec2", region)


def default_region() -> str:
    """The region boto3 would use (``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile), else
    ``us-east-1``."""
    import boto3  # type: ignore[import-untyped,import-not-found,unused-ignore]

    return boto3.session.Session().region_name or "us-east-1"


def forget_clients() -> None:
    """Drop cached clients (tests that change the endpoint or credentials call this)."""
    with _lock:
        _clients.clear()


def check_credentials() -> tuple[bool, str]:
    """Probe the credentials with STS GetCallerIdentity (a network call, unlike the local
    check of ``styx check``): (True, the account and ARN) or (False, why not)."""
    from styx.errors import StyxError
    from styx.providers.aws.errors import translated

    region = default_region()
    try:
        with translated(region, action="checking the credentials"):
            who = client("sts", region).get_caller_identity()
    except StyxError as err:
        return False, err.message
    return True, f"account {who.get('Account')} as {who.get('Arn')}"
