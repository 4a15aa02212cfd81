"""The storage seam: one small :class:`Store` interface per bucket store, its SDK inside the
provider package it belongs to (S3 and R2 in ``providers/aws``, GCS in ``providers/gcp``, Azure
Blob in ``providers/azure``).

A store checks its credentials (locally), says whether a bucket exists and can be read, makes
and deletes buckets, uploads local files, and writes the rclone remote that the nodes use to
copy or mount the bucket. Its SDK errors are translated here, by error code, into:

- ``NotFoundError('bucket-not-found')``,
- ``StoreError('bucket-access-denied')`` (403: the credentials may not read or write it),
- ``StoreError('store-credentials-missing')``, ``StoreError('store-unreachable')``,
- ``ConflictError('bucket-name-taken')`` (someone else owns a bucket of that name).

Nothing outside ``providers/`` imports a store's SDK: callers get a store from :func:`store`.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

from styx.errors import NotSupportedError, RemoteError

if TYPE_CHECKING:
    from styx.spec.buckets import BucketURL

#: Each store's implementation, ``module:Class``; imported on first use only.
STORES: dict[str, str] = {
    "s3": "styx.providers.aws.s3store:S3Store",
    "r2": "styx.providers.aws.s3store:R2Store",
    "gcs": "styx.providers.gcp.gcsstore:GCSStore",
    "azure": "styx.providers.azure.blobstore:BlobStore",
}
#: Each store's SDK (a module to find) and the extra that installs it.
SDKS: dict[str, tuple[str, str]] = {
    "s3": ("boto3", "aws"),
    "r2": ("boto3", "aws"),
    "gcs": ("google.cloud.storage", "gcp"),
    "azure": ("azure.storage.blob", "azure"),
}
#: The store a bucket goes to when a task names none, by the cluster's infra.
INFRA_STORE = {"aws": "s3", "gcp": "gcs", "azure": "azure"}
#: The order stores are tried in for a cluster whose infra has none of its own (local, SSH
#: pools, Kubernetes): the first one with credentials wins.
FALLBACK_ORDER = ("s3", "gcs", "azure", "r2")


class StoreError(RemoteError):
    """A bucket store refused or failed a request."""

    code: ClassVar[str] = "store-error"
    default_hint: ClassVar[str] = "Check the bucket and the store's credentials (`styx check`)."


#: How an upload reports progress: ``(bytes done, bytes in all)``.
Progress = Callable[[int, int], None]


class Store(Protocol):
    """One bucket store. Every call has a deadline; errors are the types named above."""

    name: str  # "s3", "gcs", "azure", "r2"
    title: str  # "Amazon S3"

    def credentials_problem(self) -> str | None:
        """Why this store cannot be used from here (no credentials found), or None. Local
        files and variables only: no network."""
        ...

    def bucket_exists(self, url: BucketURL) -> bool:
        """Whether the bucket exists; raises ``bucket-access-denied`` when it exists but these
        credentials may not read it, ``store-unreachable`` when the store does not answer."""
        ...

    def create_bucket(self, url: BucketURL, region: str | None) -> None:
        """Make the bucket (in ``region`` where the store has regions); a bucket of that name
        that these credentials already own is fine."""
        ...

    def delete_bucket(self, url: BucketURL) -> None:
        """Delete the bucket and every object in it; a missing bucket is fine."""
        ...

    def upload(self, sources: Sequence[str], url: BucketURL, progress: Progress | None) -> None:
        """Copy local files and folders into the bucket under ``url.prefix``: a folder's
        contents land at the prefix (as rsync's ``src/`` does), a file by its name."""
        ...

    def rclone_remote(self, url: BucketURL) -> dict[str, str]:
        """The rclone config section (``type`` and its options, credentials included) through
        which a node reaches the bucket. Secret: written to the nodes with mode 0600 only."""
        ...

    def rclone_path(self, url: BucketURL) -> str:
        """The bucket and prefix as the remote's path (``bucket/prefix``)."""
        ...

    def complete(self, url: BucketURL) -> BucketURL:
        """``url`` with what the store's credentials imply filled in (Azure: the storage
        account of a container Styx makes, which the task does not name)."""
        ...


def walk(sources: Sequence[str], prefix: str) -> Iterator[tuple[str, str, int]]:
    """``(local file, object name, size)`` for everything under ``sources``, as every store
    uploads it: a folder's contents at the prefix, a file by its name."""
    for src in sources:
        path = Path(src)
        if path.is_file():
            yield str(path), f"{prefix}/{path.name}" if prefix else path.name, path.stat().st_size
            continue
        for root, _dirs, files in os.walk(path):
            for f in sorted(files):
                full = Path(root) / f
                rel = full.relative_to(path).as_posix()
                yield str(full), f"{prefix}/{rel}" if prefix else rel, full.stat().st_size


_made: dict[str, Store] = {}


def store(name: str) -> Store:
    """The store called ``name``; NotSupportedError ``store-not-supported`` for another name."""
    found = _made.get(name)
    if found is not None:
        return found
    where = STORES.get(name)
    if where is None:
        raise NotSupportedError(
            f"Styx cannot use the bucket store {name!r} yet.",
            f"Use one of: {', '.join(STORES)}.",
            code="store-not-supported",
        )
    module, _, cls = where.partition(":")
    made: Store = getattr(importlib.import_module(module), cls)()
    _made[name] = made
    return made


def problem(name: str) -> str | None:
    """Why the store ``name`` cannot be used from here (its SDK is missing, or no credentials
    are found), or None. Local only: no network."""
    import importlib.util

    module, extra = SDKS.get(name, ("", ""))
    try:
        found = importlib.util.find_spec(module) is not None if module else True
    except (ImportError, ValueError):  # a parent package is missing
        found = False
    if not found:
        return f"its SDK is not installed (pip install 'styx[{extra}]')"
    return store(name).credentials_problem()


def store_for_infra(infra: str) -> str | None:
    """The store of a cluster on ``infra`` (its cloud's own), or the first store with
    credentials; None when no store can be used."""
    own = INFRA_STORE.get(infra.split("/", 1)[0])
    if own is not None:
        return own
    for name in FALLBACK_ORDER:
        if problem(name) is None:
            return name
    return None


def reset() -> None:
    """Forget made stores (tests change the environment between cases)."""
    _made.clear()
