"""Google Cloud Storage as a :class:`styx.providers.stores.Store`.

Credentials, in this order (files and variables only, no metadata-server lookup, so that a
laptop never waits on 169.254.169.254):

- ``STORAGE_EMULATOR_HOST`` (the tests' fake-gcs-server): anonymous, project from
  ``GOOGLE_CLOUD_PROJECT`` or ``styx-test``;
- the JSON file named by ``GOOGLE_APPLICATION_CREDENTIALS``, else gcloud's application-default
  credentials (``$CLOUDSDK_CONFIG`` or ``~/.config/gcloud``,
  ``application_default_credentials.json``): a ``service_account`` key or an
  ``authorized_user`` refresh token. The project comes from the file, ``GOOGLE_CLOUD_PROJECT``
  or ``CLOUDSDK_CORE_PROJECT``.

The nodes get the same identity through rclone: the service account's JSON on one line, or the
user's refresh token (rclone refreshes it with the same OAuth client id and secret gcloud
used); with the emulator, ``anonymous`` and the emulator's JSON API root as ``endpoint``
(``http://HOST:PORT/storage/v1/``: rclone 1.60 answers "directory not found" without the path).

Errors are decided by google.api_core's exception class and HTTP code, never by message text.
Every call has a connect/read timeout and a short retry deadline for transient failures.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from styx.errors import ConflictError, NotFoundError
from styx.providers.stores import Progress, StoreError, walk

if TYPE_CHECKING:
    from styx.spec.buckets import BucketURL

#: Seconds to connect and to wait for each answer.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
#: How long a bucket call retries transient failures (503, refused connections) in all;
#: object transfers get longer, as one 503 in a long upload should not fail it.
RETRY_S = 4.0
TRANSFER_RETRY_S = 60.0
#: Parallel object uploads and deletes: below requests' pool of 10 connections per host.
UPLOAD_THREADS = 8
SCOPES = ("https://www.googleapis.com/auth/devstorage.full_control",)
#: The project an emulator client bills to when none is given (the emulator ignores it).
EMULATOR_PROJECT = "styx-test"
_KINDS = ("service_account", "authorized_user")
#: rclone refreshes an authorized_user token at once when its expiry has passed.
_EXPIRED = "2000-01-01T00:00:00Z"


def _gcloud_dir() -> Path:
    raw = os.environ.get("CLOUDSDK_CONFIG")
    return Path(raw) if raw else Path.home() / ".config" / "gcloud"


def emulator() -> str | None:
    """The emulator's base URL (``http://HOST:PORT``) when ``STORAGE_EMULATOR_HOST`` is set."""
    raw = (os.environ.get("STORAGE_EMULATOR_HOST") or "").strip().rstrip("/")
    if not raw:
        return None
    return raw if "://" in raw else f"http://{raw}"


def credentials_file() -> Path:
    """The credentials file the client would read (it may be missing)."""
    given = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if given:
        return Path(given).expanduser()
    return _gcloud_dir() / "application_default_credentials.json"


def _read_credentials() -> tuple[dict[str, Any] | None, str | None]:
    """The credentials file's JSON, or None and why it cannot be used."""
    path = credentials_file()
    if not path.is_file():
        if os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
            return None, "GOOGLE_APPLICATION_CREDENTIALS names a missing file"
        return None, "no GCP credentials (gcloud auth application-default login)"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, f"the GCP credentials file {path} cannot be read as JSON"
    if not isinstance(info, dict) or info.get("type") not in _KINDS:
        return None, f"the GCP credentials in {path} are neither a service account nor a user's"
    return info, None


def _project(info: dict[str, Any] | None) -> str | None:
    from_file = None if info is None else info.get("project_id") or info.get("quota_project_id")
    return (
        from_file
        or os.environ.get("GOOGLE_CLOUD_PROJECT")
        or os.environ.get("CLOUDSDK_CORE_PROJECT")
        or None
    )


def _load(info: dict[str, Any]) -> Any:
    """Credentials of the file's own kind (checked by :func:`_read_credentials`): the loader
    of that kind only, so a file of another kind is never followed anywhere."""
    try:
        if info.get("type") == "service_account":
            from google.oauth2 import service_account  # type: ignore[import-untyped,import-not-found,unused-ignore]

            return service_account.Credentials.from_service_account_info(info, scopes=SCOPES)  # type: ignore[no-untyped-call,unused-ignore]
        from google.oauth2 import credentials  # type: ignore[import-untyped,import-not-found,unused-ignore]

        return credentials.Credentials.from_authorized_user_info(info, scopes=SCOPES)  # type: ignore[no-untyped-call,unused-ignore]
    except (ValueError, KeyError) as e:  # a missing field, a key that does not parse
        raise StoreError(
            f"The GCP credentials file {credentials_file()} is unusable ({type(e).__name__}).",
            "Run `gcloud auth application-default login` again, or point "
            "GOOGLE_APPLICATION_CREDENTIALS at a valid key file.",
            code="store-credentials-missing",
        ) from e


def _no_credentials(url: BucketURL, why: str) -> StoreError:
    return StoreError(
        f"No usable Google Cloud Storage credentials for {url.url}: {why}.",
        "Run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS "
        "to a service-account key file.",
        code="store-credentials-missing",
    )


class GCSStore:
    """Google Cloud Storage buckets."""

    name = "gcs"
    title = "Google Cloud Storage"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, ...], Any] = {}

    # --- credentials and clients ----------------------------------------------------------------

    def credentials_problem(self) -> str | None:
        if emulator() is not None:
            return None
        return _read_credentials()[1]

    def _client(self, url: BucketURL) -> Any:
        """A client for the current environment, made once per emulator, credentials and
        project (tests and long sessions change them under a running process)."""
        base = emulator()
        info, why = (None, None) if base else _read_credentials()
        if base is None and info is None:
            raise _no_credentials(url, why or "none found")
        project = _project(info) or (EMULATOR_PROJECT if base else None)
        digest = hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()
        key = (base or "", digest, project or "")
        with self._lock:
            found = self._clients.get(key)
            if found is None:
                found = self._new_client(base, info, project)
                self._clients[key] = found
            return found

    def _new_client(
        self, base: str | None, info: dict[str, Any] | None, project: str | None
    ) -> Any:
        from google.cloud import storage  # type: ignore[import-untyped,import-not-found,unused-ignore]

        if base is not None or info is None:  # the emulator: no file is read then
            from google.auth.credentials import AnonymousCredentials  # type: ignore[import-untyped,import-not-found,unused-ignore]

            # The client reads STORAGE_EMULATOR_HOST itself and talks to it.
            return storage.Client(project=project, credentials=AnonymousCredentials())  # type: ignore[no-untyped-call,unused-ignore]
        # project=None (not left out): the client then never asks the metadata server.
        return storage.Client(project=project, credentials=_load(info))

    @staticmethod
    def _retry(deadline: float = RETRY_S) -> Any:
        from google.cloud.storage.retry import DEFAULT_RETRY  # type: ignore[import-untyped,import-not-found,unused-ignore]

        return DEFAULT_RETRY.with_delay(initial=0.25, maximum=2.0).with_timeout(deadline)

    @property
    def _timeout(self) -> tuple[float, float]:
        return (CONNECT_TIMEOUT, READ_TIMEOUT)

    @contextmanager
    def _translated(self, url: BucketURL, doing: str) -> Iterator[None]:
        from google.api_core import exceptions as gexc  # type: ignore[import-untyped,import-not-found,unused-ignore]
        from google.auth import exceptions as aexc  # type: ignore[import-untyped,import-not-found,unused-ignore]
        from requests import exceptions as rexc  # type: ignore[import-untyped,import-not-found,unused-ignore]

        try:
            yield
        except (gexc.NotFound, gexc.Forbidden, gexc.Unauthorized, aexc.RefreshError) as e:
            raise self._refused(url, doing, e) from e
        except gexc.RetryError as e:  # only transient failures are retried: it stayed down
            cause = type(e.cause).__name__ if e.cause is not None else "timeout"
            raise self._unreachable(url, doing, cause) from e
        except gexc.GoogleAPICallError as e:
            status = int(e.code or 0)
            if status >= 500 or status == 429:
                raise self._unreachable(url, doing, str(status)) from e
            raise StoreError(
                f"{self.title} failed while {doing} {url.url} ({status or type(e).__name__}).",
                "Check the bucket name and the store's status, then retry.",
                code="store-error",
            ) from e
        except (aexc.TransportError, rexc.ConnectionError, rexc.Timeout, ConnectionError) as e:
            raise self._unreachable(url, doing, type(e).__name__) from e

    def _refused(self, url: BucketURL, doing: str, e: BaseException) -> StoreError | NotFoundError:
        status = getattr(e, "code", None)
        if status == 404:
            return NotFoundError(
                f"The bucket {url.url} does not exist.",
                "Check the bucket name, or give a 'name' so that Styx creates it.",
                code="bucket-not-found",
            )
        return StoreError(
            f"{self.title} refused access to {url.url} while {doing} "
            f"({status or type(e).__name__}).",
            "Check that these credentials may read and write the bucket.",
            code="bucket-access-denied",
        )

    def _unreachable(self, url: BucketURL, doing: str, why: str) -> StoreError:
        return StoreError(
            f"{self.title} did not answer while {doing} {url.url} ({why}).",
            "Check the network (and STORAGE_EMULATOR_HOST if set), then retry.",
            code="store-unreachable",
        )

    # --- buckets ----------------------------------------------------------------------------------

    def bucket_exists(self, url: BucketURL) -> bool:
        from google.api_core import exceptions as gexc  # type: ignore[import-untyped,import-not-found,unused-ignore]

        client = self._client(url)
        with self._translated(url, "checking"):
            # Listing, not a bucket GET: reading needs storage.objects.list, and a reader
            # (roles/storage.objectViewer) may lack storage.buckets.get.
            pages = client.list_blobs(
                url.bucket, prefix=url.prefix or None, max_results=1,
                timeout=self._timeout, retry=self._retry(),
            ).pages  # fmt: skip
            try:
                next(iter(pages), None)
            except gexc.NotFound:
                return False
        return True

    def create_bucket(self, url: BucketURL, region: str | None) -> None:
        from google.api_core import exceptions as gexc  # type: ignore[import-untyped,import-not-found,unused-ignore]

        client = self._client(url)
        if client.project is None:
            raise StoreError(
                f"Styx cannot create {url.url}: no Google Cloud project is known.",
                "Set GOOGLE_CLOUD_PROJECT (or `gcloud config set project PROJECT`).",
                code="store-error",
            )
        bucket = client.bucket(url.bucket)
        # Uniform access: IAM alone decides, as rclone's bucket_policy_only expects.
        bucket.iam_configuration.uniform_bucket_level_access_enabled = True
        with self._translated(url, "creating"):
            try:
                client.create_bucket(
                    bucket, location=region or None, timeout=self._timeout, retry=self._retry()
                )
            except gexc.Conflict as e:
                if not self._ours(client, url):
                    raise ConflictError(
                        f"The bucket name {url.bucket!r} is taken in {self.title} by another "
                        "project.",
                        "Choose another 'name' for the storage.",
                        code="bucket-name-taken",
                    ) from e

    def _ours(self, client: Any, url: BucketURL) -> bool:
        """Whether a bucket that already exists is one these credentials can use (a 409 on
        create says only that the name is in use, by anyone)."""
        from google.api_core import exceptions as gexc  # type: ignore[import-untyped,import-not-found,unused-ignore]

        try:
            client.get_bucket(url.bucket, timeout=self._timeout, retry=self._retry())
        except (gexc.Forbidden, gexc.NotFound, gexc.Unauthorized):
            return False
        return True

    def delete_bucket(self, url: BucketURL) -> None:
        from google.api_core import exceptions as gexc  # type: ignore[import-untyped,import-not-found,unused-ignore]

        client = self._client(url)
        retry = self._retry(TRANSFER_RETRY_S)

        def drop(blob: Any) -> None:
            # Every generation: a versioned bucket keeps old ones, and they block deletion.
            with suppress(gexc.NotFound):
                blob.bucket.delete_blob(
                    blob.name, generation=blob.generation, timeout=self._timeout, retry=retry
                )

        with self._translated(url, "deleting"):
            if not self.bucket_exists(url.with_prefix("")):
                return
            blobs = client.list_blobs(
                url.bucket, versions=True, timeout=self._timeout, retry=self._retry()
            )
            with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
                list(pool.map(drop, blobs))
            with suppress(gexc.NotFound):
                client.bucket(url.bucket).delete(timeout=self._timeout, retry=self._retry())

    def upload(self, sources: Sequence[str], url: BucketURL, progress: Progress | None) -> None:
        client = self._client(url)
        bucket = client.bucket(url.bucket)
        files = list(walk(sources, url.prefix))
        total = sum(size for _f, _k, size in files)
        done = [0]
        lock = threading.Lock()
        retry = self._retry(TRANSFER_RETRY_S)

        def one(item: tuple[str, str, int]) -> None:
            path, key, size = item
            # The same bytes again on a retry: retrying a plain upload is safe.
            bucket.blob(key).upload_from_filename(path, timeout=self._timeout, retry=retry)
            with lock:
                done[0] += size
                if progress is not None:
                    progress(done[0], total)

        with self._translated(url, "uploading to"), ThreadPoolExecutor(UPLOAD_THREADS) as pool:
            list(pool.map(one, files))

    # --- the nodes' view ----------------------------------------------------------------------------

    def rclone_remote(self, url: BucketURL) -> dict[str, str]:
        out = {"type": "google cloud storage", "bucket_policy_only": "true"}
        base = emulator()
        if base is not None:
            out.update(anonymous="true", endpoint=f"{base}/storage/v1/")
            project: str | None = _project(None) or EMULATOR_PROJECT
        else:
            info, why = _read_credentials()
            if info is None:
                raise _no_credentials(url, why or "none found")
            out.update(self._identity(url, info))
            project = _project(info)
        if project:
            # rclone passes it where the API takes a project id or number (bucket listing
            # and creation only).
            out["project_number"] = project
        return out

    @staticmethod
    def _identity(url: BucketURL, info: dict[str, Any]) -> dict[str, str]:
        """The rclone options that carry the credentials file's identity."""
        if info.get("type") == "service_account":
            return {"service_account_credentials": json.dumps(info, separators=(",", ":"))}
        missing = [k for k in ("refresh_token", "client_id", "client_secret") if not info.get(k)]
        if missing:
            raise _no_credentials(url, f"the user's credentials lack {', '.join(missing)}")
        token = {"access_token": "expired", "token_type": "Bearer",
                 "refresh_token": info["refresh_token"], "expiry": _EXPIRED}  # fmt: skip
        return {"token": json.dumps(token, separators=(",", ":")),
                "client_id": str(info["client_id"]),
                "client_secret": str(info["client_secret"])}  # fmt: skip

    def rclone_path(self, url: BucketURL) -> str:
        return f"{url.bucket}/{url.prefix}" if url.prefix else url.bucket

    def complete(self, url: BucketURL) -> BucketURL:
        return url
