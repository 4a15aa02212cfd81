"""Azure Blob Storage as a :class:`styx.providers.stores.Store`; a bucket is a container.

Credentials (variables only): ``AZURE_STORAGE_CONNECTION_STRING`` (``AccountName`` and
``AccountKey``; ``BlobEndpoint`` when the endpoint is not ``https://ACCOUNT.blob.core.windows.net``,
as with the tests' Azurite, ``http://HOST:PORT/devstoreaccount1``; ``UseDevelopmentStorage=true``
for a local Azurite on its default port), or ``AZURE_STORAGE_ACCOUNT`` with
``AZURE_STORAGE_KEY``. A bucket URL names its storage account
(``https://ACCOUNT.blob.core.windows.net/CONTAINER``), and that account must be the
credentials' own: a key opens one account only.

The nodes do not get the account key: rclone's remote is a container SAS URL (read, add,
create, write, delete, list; 7 days), signed here with the key on the container's real endpoint
URL. That is also the one way rclone 1.60 reaches Azurite without DNS lookups: its
``use_emulator``/``endpoint`` options build a host name from the account. Measured against
Azurite 3.35 with rclone 1.60.1: with a container SAS, the remote's root lists the container
itself, ``remote:CONTAINER/PREFIX`` reaches objects, and any other container name fails
("container name in SAS URL and container provided in command do not match"). So
:meth:`BlobStore.rclone_path` is ``CONTAINER/PREFIX``, as for the other stores.

Errors are decided by the service's ``x-ms-error-code`` and HTTP status, never by message text.
Every call has a connect/read timeout and at most a few quick retries.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from styx.errors import NotFoundError
from styx.providers.stores import Progress, StoreError, walk

if TYPE_CHECKING:
    from styx.spec.buckets import BucketURL

#: Seconds to connect and to wait for each answer.
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 30
#: Retries of a failed request (a refused connection, a 503), one second apart.
RETRIES = 3
#: Parallel uploads: below the HTTP pool of 10 connections per host.
UPLOAD_THREADS = 8
#: How long the nodes' SAS URL stays valid.
SAS_DAYS = 7
#: Azurite's fixed development account (published by Microsoft; no secret).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEV_ENDPOINT = "http://127.0.0.1:10000/devstoreaccount1"

_MISSING = frozenset({"ContainerNotFound", "ResourceNotFound"})
_DENIED = frozenset(
    {"AuthorizationFailure", "AuthenticationFailed", "AuthorizationPermissionMismatch",
     "AuthorizationSourceIPMismatch", "AuthorizationProtocolMismatch",
     "AuthorizationResourceTypeMismatch", "AuthorizationServiceMismatch",
     "InsufficientAccountPermissions", "AccountIsDisabled", "KeyBasedAuthenticationNotPermitted"}
)  # fmt: skip
_EXISTS = frozenset({"ContainerAlreadyExists"})
_BUSY = frozenset({"ContainerBeingDeleted", "ContainerDisabled"})


@dataclasses.dataclass(frozen=True, slots=True)
class Account:
    """The storage account the credentials open."""

    name: str
    key: str = dataclasses.field(repr=False)
    endpoint: str  # the blob service's URL, no trailing slash


def _parse(text: str) -> dict[str, str]:
    """A connection string's ``Key=Value;`` pairs (values may hold ``=``, keys any case)."""
    out: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key:
            out[key.strip().lower()] = value.strip()
    return out


def account() -> tuple[Account | None, str | None]:
    """The account from the environment, or None and why there is none. No network."""
    raw = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    if raw:
        return _from_connection_string(_parse(raw))
    name, key = os.environ.get("AZURE_STORAGE_ACCOUNT"), os.environ.get("AZURE_STORAGE_KEY")
    if name and key:
        return Account(name, key, f"https://{name}.blob.core.windows.net"), None
    if name:
        return None, "AZURE_STORAGE_ACCOUNT is set but AZURE_STORAGE_KEY is not"
    return None, "no Azure Storage credentials (AZURE_STORAGE_CONNECTION_STRING)"


def _from_connection_string(parts: dict[str, str]) -> tuple[Account | None, str | None]:
    if parts.get("usedevelopmentstorage", "").lower() == "true":
        proxy = parts.get("developmentstorageproxyuri")
        return Account(DEV_ACCOUNT, DEV_KEY, f"{proxy.rstrip('/')}/{DEV_ACCOUNT}" if proxy
                       else DEV_ENDPOINT), None  # fmt: skip
    name, key = parts.get("accountname"), parts.get("accountkey")
    if not name:
        return None, "AZURE_STORAGE_CONNECTION_STRING names no AccountName"
    if not key:
        return None, "AZURE_STORAGE_CONNECTION_STRING has no AccountKey (SAS-only is not supported)"
    endpoint = parts.get("blobendpoint")
    if not endpoint:
        scheme = parts.get("defaultendpointsprotocol") or "https"
        suffix = parts.get("endpointsuffix") or "core.windows.net"
        endpoint = f"{scheme}://{name}.blob.{suffix}"
    return Account(name, key, endpoint.rstrip("/")), None


def _code(exc: BaseException) -> tuple[str | None, int | None]:
    """The service's error code (``x-ms-error-code``) and HTTP status of an SDK error."""
    code = getattr(exc, "error_code", None)
    code = getattr(code, "value", code)  # StorageErrorCode is a str enum
    status = getattr(exc, "status_code", None)
    return (str(code) if code else None), (int(status) if status else None)


class BlobStore:
    """Azure Blob Storage containers."""

    name = "azure"
    title = "Azure Blob Storage"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[Account, Any] = {}

    # --- credentials and clients ----------------------------------------------------------------

    def credentials_problem(self) -> str | None:
        return account()[1]

    def _account(self, url: BucketURL) -> Account:
        """The credentials' account, which must be the one ``url`` names."""
        found, why = account()
        if found is None:
            raise StoreError(
                f"No {self.title} credentials were found for {url.url}: {why}.",
                "Set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT and "
                "AZURE_STORAGE_KEY.",
                code="store-credentials-missing",
            )
        if url.account and url.account.lower() != found.name.lower():
            raise StoreError(
                f"{url.url} is in the storage account {url.account!r}, but the Azure "
                f"credentials are for the account {found.name!r}.",
                "Use a container of that account, or credentials for the URL's account.",
                code="bucket-access-denied",
            )
        return found

    def _container(self, url: BucketURL) -> Any:
        """The container's client, on a service client made once per account."""
        acct = self._account(url)
        with self._lock:
            service = self._clients.get(acct)
            if service is None:
                service = self._new_client(acct)
                self._clients[acct] = service
        return service.get_container_client(url.bucket)

    @staticmethod
    def _new_client(acct: Account) -> Any:
        from azure.storage.blob import BlobServiceClient, LinearRetry  # type: ignore[import-untyped,import-not-found,unused-ignore]

        return BlobServiceClient(
            account_url=acct.endpoint,
            credential={"account_name": acct.name, "account_key": acct.key},
            connection_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            retry_policy=LinearRetry(backoff=1, retry_total=RETRIES, random_jitter_range=0),
        )

    @contextmanager
    def _translated(self, url: BucketURL, doing: str) -> Iterator[None]:
        from azure.core.exceptions import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
            HttpResponseError,
            ServiceRequestError,
            ServiceResponseError,
        )

        try:
            yield
        except HttpResponseError as e:
            raise self._from_status(url, doing, *_code(e)) from e
        except (ServiceRequestError, ServiceResponseError, ConnectionError, TimeoutError) as e:
            raise self._unreachable(url, doing, type(e).__name__) from e

    def _from_status(
        self, url: BucketURL, doing: str, code: str | None, status: int | None
    ) -> StoreError | NotFoundError:
        if code in _MISSING or (status == 404 and code is None):
            return NotFoundError(
                f"The container {url.url} does not exist.",
                "Check the container name, or give a 'name' so that Styx creates it.",
                code="bucket-not-found",
            )
        if code in _DENIED or status in (401, 403):
            return StoreError(
                f"{self.title} refused access to {url.url} while {doing} ({code or status}).",
                "Check that these credentials may read and write the container.",
                code="bucket-access-denied",
            )
        if code in _BUSY:
            return StoreError(
                f"The container {url.url} is being deleted ({code}), so it cannot be used now.",
                "Retry in a minute, when Azure has finished deleting it.",
                code="store-error",
            )
        if status is not None and status >= 500:
            return self._unreachable(url, doing, code or str(status))
        return StoreError(
            f"{self.title} failed while {doing} {url.url} ({code or status}).",
            "Check the container name and the store's status, then retry.",
            code="store-error",
        )

    def _unreachable(self, url: BucketURL, doing: str, why: str) -> StoreError:
        return StoreError(
            f"{self.title} did not answer while {doing} {url.url} ({why}).",
            "Check the network (and the connection string's BlobEndpoint if set), then retry.",
            code="store-unreachable",
        )

    # --- containers -------------------------------------------------------------------------------

    def bucket_exists(self, url: BucketURL) -> bool:
        from azure.core.exceptions import ResourceNotFoundError  # type: ignore[import-untyped,import-not-found,unused-ignore]

        container = self._container(url)
        with self._translated(url, "checking"):
            # One listing page, not only the properties: reading needs the List permission.
            pages = container.list_blobs(name_starts_with=url.prefix or None, results_per_page=1)
            try:
                next(iter(pages.by_page()), None)
            except ResourceNotFoundError:
                return False
        return True

    def create_bucket(self, url: BucketURL, region: str | None) -> None:
        """Make the container; ``region`` is the account's, not the container's: unused."""
        from azure.core.exceptions import ResourceExistsError  # type: ignore[import-untyped,import-not-found,unused-ignore]

        del region
        container = self._container(url)
        with self._translated(url, "creating"):
            try:
                container.create_container()
            except ResourceExistsError as e:
                # Container names are per account: one that exists is this account's own.
                if _code(e)[0] not in _EXISTS:
                    raise

    def delete_bucket(self, url: BucketURL) -> None:
        """Delete the container, its blobs with it (Azure frees the name a little later)."""
        from azure.core.exceptions import ResourceNotFoundError  # type: ignore[import-untyped,import-not-found,unused-ignore]

        container = self._container(url)
        with self._translated(url, "deleting"), suppress(ResourceNotFoundError):
            container.delete_container()

    def upload(self, sources: Sequence[str], url: BucketURL, progress: Progress | None) -> None:
        container = self._container(url)
        files = list(walk(sources, url.prefix))
        total = sum(size for _f, _k, size in files)
        done = [0]
        lock = threading.Lock()

        def one(item: tuple[str, str, int]) -> None:
            path, key, size = item
            with open(path, "rb") as data:
                container.upload_blob(key, data, length=size, overwrite=True, max_concurrency=2)
            with lock:
                done[0] += size
                if progress is not None:
                    progress(done[0], total)

        with self._translated(url, "uploading to"), ThreadPoolExecutor(UPLOAD_THREADS) as pool:
            list(pool.map(one, files))

    # --- the nodes' view ----------------------------------------------------------------------------

    def rclone_remote(self, url: BucketURL) -> dict[str, str]:
        """A container SAS URL: the nodes can reach this container only, for a week."""
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas  # type: ignore[import-untyped,import-not-found,unused-ignore]

        acct = self._account(url)
        permission = ContainerSasPermissions(
            read=True, add=True, create=True, write=True, delete=True, list=True
        )
        expiry = dt.datetime.now(dt.UTC) + dt.timedelta(days=SAS_DAYS)
        sas = generate_container_sas(
            acct.name, url.bucket, account_key=acct.key, permission=permission, expiry=expiry
        )
        return {"type": "azureblob", "sas_url": f"{acct.endpoint}/{url.bucket}?{sas}"}

    def rclone_path(self, url: BucketURL) -> str:
        """``CONTAINER/PREFIX`` (a container SAS remote still takes the container's name)."""
        return f"{url.bucket}/{url.prefix}" if url.prefix else url.bucket

    def complete(self, url: BucketURL) -> BucketURL:
        """A container Styx makes lives in the credentials' account (the task names none)."""
        if url.account:
            return url
        found, _why = account()
        return dataclasses.replace(url, account=found.name) if found is not None else url
