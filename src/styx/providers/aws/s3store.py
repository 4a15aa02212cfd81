"""Amazon S3 (and Cloudflare R2, which speaks S3) as a :class:`styx.providers.stores.Store`.

boto3 follows its standard credential chain and honours ``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL`` (the tests point them at moto's server). R2 reads
``~/.cloudflare/r2.credentials`` (profile ``r2``) and the account id in
``~/.cloudflare/accountid``, as SkyPilot does; ``R2_ENDPOINT_URL`` overrides its endpoint.

Errors are decided by S3's error code and HTTP status, never by message text.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from styx.errors import ConflictError, NotFoundError
from styx.providers.stores import Progress, StoreError, walk

if TYPE_CHECKING:
    from styx.spec.buckets import BucketURL

_MISSING = frozenset({"404", "NoSuchBucket", "NotFound"})
_DENIED = frozenset(
    {"403", "AccessDenied", "Forbidden", "AllAccessDisabled", "AccountProblem",
     "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}
)  # fmt: skip
_TAKEN = frozenset({"BucketAlreadyExists"})
_OWNED = frozenset({"BucketAlreadyOwnedByYou"})
UPLOAD_THREADS = 16


def _code(exc: BaseException) -> tuple[str | None, int | None]:
    response = getattr(exc, "response", None) or {}
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return (response.get("Error") or {}).get("Code"), status


class S3Store:
    """Amazon S3 buckets."""

    name = "s3"
    title = "Amazon S3"
    _endpoint_env = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}

    # --- credentials and clients ----------------------------------------------------------------

    def _session(self) -> Any:
        import boto3  # type: ignore[import-untyped,import-not-found,unused-ignore]

        return boto3.session.Session()

    def endpoint(self) -> str | None:
        return next((os.environ[k] for k in self._endpoint_env if os.environ.get(k)), None)

    def _credentials(self) -> Any:
        creds = self._session().get_credentials()
        return None if creds is None else creds.get_frozen_credentials()

    def credentials_problem(self) -> str | None:
        try:
            creds = self._credentials()
        except Exception as e:  # a broken profile file: botocore's own error types vary
            return f"the AWS credentials cannot be read ({type(e).__name__})"
        return None if creds is not None else "no AWS credentials (aws configure, or AWS_*)"

    def _client(self, region: str | None = None) -> Any:
        key = region or ""
        with self._lock:
            found = self._clients.get(key)
            if found is None:
                from styx.providers.aws.client import new_client

                # boto3 itself honours AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL.
                found = new_client("s3", region or "us-east-1", self._session())
                self._clients[key] = found
            return found

    @contextmanager
    def _translated(self, url: BucketURL, doing: str) -> Iterator[None]:
        from botocore.exceptions import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
            BotoCoreError,
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
        )

        try:
            yield
        except NoCredentialsError as e:
            raise StoreError(
                f"No {self.title} credentials were found for {url.url}.",
                "Configure them (aws configure, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY).",
                code="store-credentials-missing",
            ) from e
        except ClientError as e:
            code, status = _code(e)
            if code in _MISSING or (status == 404 and code is None):
                raise NotFoundError(
                    f"The bucket {url.url} does not exist.",
                    "Check the bucket name, or give a 'name' so that Styx creates it.",
                    code="bucket-not-found",
                ) from e
            if code in _DENIED or status == 403:
                raise StoreError(
                    f"{self.title} refused access to {url.url} while {doing} ({code or status}).",
                    "Check that these credentials may read and write the bucket.",
                    code="bucket-access-denied",
                ) from e
            if code in _TAKEN:
                raise ConflictError(
                    f"The bucket name {url.bucket!r} is taken in {self.title} by another account.",
                    "Choose another 'name' for the storage.",
                    code="bucket-name-taken",
                ) from e
            raise StoreError(
                f"{self.title} failed while {doing} {url.url} ({code or status}).",
                "Retry; if it persists, check the store's status.",
                code="store-unreachable" if status and status >= 500 else "store-error",
            ) from e
        except (EndpointConnectionError, BotoCoreError) as e:
            raise StoreError(
                f"{self.title} did not answer while {doing} {url.url} ({type(e).__name__}).",
                "Check the network (and AWS_ENDPOINT_URL_S3 if set), then retry.",
                code="store-unreachable",
            ) from e

    # --- buckets ----------------------------------------------------------------------------------

    def bucket_exists(self, url: BucketURL) -> bool:
        from botocore.exceptions import ClientError  # type: ignore[import-untyped,import-not-found,unused-ignore]

        with self._translated(url, "checking"):
            try:
                self._client().head_bucket(Bucket=url.bucket)
            except ClientError as e:
                code, status = _code(e)
                if code in _MISSING or status == 404:
                    return False
                raise
            # Reading needs ListBucket: a HEAD alone passes with some policies that deny it.
            self._client().list_objects_v2(Bucket=url.bucket, Prefix=url.prefix, MaxKeys=1)
        return True

    def create_bucket(self, url: BucketURL, region: str | None) -> None:
        from botocore.exceptions import ClientError  # type: ignore[import-untyped,import-not-found,unused-ignore]

        region = region or "us-east-1"
        kwargs: dict[str, Any] = {"Bucket": url.bucket}
        if region != "us-east-1" and self.name == "s3":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        with self._translated(url, "creating"):
            try:
                self._client(region).create_bucket(**kwargs)
            except ClientError as e:
                if _code(e)[0] not in _OWNED:
                    raise

    def delete_bucket(self, url: BucketURL) -> None:
        client = self._client()
        with self._translated(url, "deleting"):
            if not self.bucket_exists(url):
                return
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=url.bucket)
            for page in pages:
                keys = [{"Key": o["Key"]} for o in page.get("Contents", ())]
                if keys:
                    client.delete_objects(
                        Bucket=url.bucket, Delete={"Objects": keys, "Quiet": True}
                    )
            client.delete_bucket(Bucket=url.bucket)

    def upload(self, sources: Sequence[str], url: BucketURL, progress: Progress | None) -> None:
        from boto3.s3.transfer import TransferConfig  # type: ignore[import-untyped,import-not-found,unused-ignore]

        files = list(walk(sources, url.prefix))
        total = sum(size for _f, _k, size in files)
        done = [0]
        lock = threading.Lock()
        config = TransferConfig(max_concurrency=4, multipart_threshold=64 * 2**20)
        client = self._client()

        def one(item: tuple[str, str, int]) -> None:
            path, key, size = item
            client.upload_file(path, url.bucket, key, Config=config)
            with lock:
                done[0] += size
                if progress is not None:
                    progress(done[0], total)

        with self._translated(url, "uploading to"), ThreadPoolExecutor(UPLOAD_THREADS) as pool:
            list(pool.map(one, files))

    # --- the nodes' view ----------------------------------------------------------------------------

    def _region_of(self, url: BucketURL) -> str:
        with self._translated(url, "locating"):
            found = self._client().get_bucket_location(Bucket=url.bucket).get("LocationConstraint")
        return str(found or "us-east-1")

    def rclone_remote(self, url: BucketURL) -> dict[str, str]:
        creds = self._credentials()
        if creds is None:
            raise StoreError(
                f"No {self.title} credentials were found for {url.url}.",
                "Configure them (aws configure, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY).",
                code="store-credentials-missing",
            )
        out = {"type": "s3", "env_auth": "false", "access_key_id": creds.access_key,
               "secret_access_key": creds.secret_key}  # fmt: skip
        if creds.token:
            out["session_token"] = creds.token
        endpoint = self.endpoint()
        if endpoint:
            out.update(provider="Other", endpoint=endpoint, force_path_style="true")
            out["region"] = os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        else:
            out.update(provider="AWS", region=self._region_of(url))
        return out

    def rclone_path(self, url: BucketURL) -> str:
        return f"{url.bucket}/{url.prefix}" if url.prefix else url.bucket

    def complete(self, url: BucketURL) -> BucketURL:
        return url


class R2Store(S3Store):
    """Cloudflare R2 buckets, through R2's S3 API."""

    name = "r2"
    title = "Cloudflare R2"
    _endpoint_env = ("R2_ENDPOINT_URL",)

    def _session(self) -> Any:
        import boto3  # type: ignore[import-untyped,import-not-found,unused-ignore]

        creds = Path(os.path.expanduser("~/.cloudflare/r2.credentials"))
        return boto3.session.Session(profile_name="r2") if creds.exists() else boto3.Session()

    def endpoint(self) -> str | None:
        given = os.environ.get("R2_ENDPOINT_URL")
        if given:
            return given
        account = Path(os.path.expanduser("~/.cloudflare/accountid"))
        if account.exists():
            return f"https://{account.read_text().strip()}.r2.cloudflarestorage.com"
        return None

    def credentials_problem(self) -> str | None:
        if self.endpoint() is None:
            return "no Cloudflare account id (~/.cloudflare/accountid)"
        if not Path(os.path.expanduser("~/.cloudflare/r2.credentials")).exists() and not (
            os.environ.get("R2_ENDPOINT_URL")
        ):
            return "no R2 credentials (~/.cloudflare/r2.credentials)"
        return super().credentials_problem()

    def _client(self, region: str | None = None) -> Any:
        with self._lock:
            found = self._clients.get("r2")
            if found is None:
                from styx.providers.aws.client import _config

                found = self._session().client(
                    "s3", region_name="auto", endpoint_url=self.endpoint(), config=_config()
                )
                self._clients["r2"] = found
            return found

    def rclone_remote(self, url: BucketURL) -> dict[str, str]:
        out = super().rclone_remote(url)
        out.update(provider="Cloudflare", endpoint=self.endpoint() or "", region="auto")
        out.pop("force_path_style", None)
        return out
