"""Bucket URLs as tasks write them, and the storage each bucket file mount asks for.

A bucket URL names a store, a bucket and an optional key prefix:

- ``s3://bucket[/prefix]`` (Amazon S3), ``gs://bucket[/prefix]`` (Google Cloud Storage),
  ``r2://bucket[/prefix]`` (Cloudflare R2);
- ``https://<account>.blob.core.windows.net/<container>[/prefix]`` (Azure Blob Storage).

:func:`parse_bucket_url` checks the names against each store's own rules, so a malformed URL
is refused when the task is checked, before anything is provisioned. :func:`storage_of` turns
one ``file_mounts`` entry into a :class:`StorageMount`: where its objects come from, which
bucket Styx makes (and uploads into) for it, and how the nodes see it (COPY, MOUNT or
MOUNT_CACHED). Pure: no SDK, no I/O.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re

from styx.errors import NotSupportedError, SpecError
from styx.spec.mounts import FileMount, is_url

#: Stores Styx reads and writes, by the name ``store:`` uses.
STORES = ("s3", "gcs", "azure", "r2")
_SCHEMES = {"s3": "s3", "gs": "gcs", "r2": "r2"}
_AZURE_HOST = re.compile(r"([a-z0-9]{3,24})\.blob\.core\.windows\.net\Z")
#: Parsed by the schema, not launched by Styx (yet).
_OTHER_SCHEMES = {"cos": "IBM COS", "oci": "OCI Object Storage", "nebius": "Nebius", "cw": "CoreWeave"}  # fmt: skip

_S3_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
_GCS_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]\Z")
_AZURE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}\Z")
_RULES = {
    "s3": (_S3_NAME, "3-63 lowercase letters, digits, dots and hyphens"),
    "r2": (_S3_NAME, "3-63 lowercase letters, digits, dots and hyphens"),
    "gcs": (_GCS_NAME, "3-63 lowercase letters, digits, dots, hyphens and underscores"),
    "azure": (_AZURE_NAME, "3-63 lowercase letters, digits and single hyphens"),
}
BAD_URL = "invalid-bucket-url"


@dataclasses.dataclass(frozen=True, slots=True)
class BucketURL:
    """One bucket (and key prefix, ``""`` for all of it) in one store."""

    store: str
    bucket: str
    prefix: str = ""
    account: str | None = None  # Azure: the storage account

    @property
    def url(self) -> str:
        """The URL in the form users write it."""
        tail = f"/{self.prefix}" if self.prefix else ""
        if self.store == "azure":
            return f"https://{self.account}.blob.core.windows.net/{self.bucket}{tail}"
        scheme = {v: k for k, v in _SCHEMES.items()}[self.store]
        return f"{scheme}://{self.bucket}{tail}"

    def with_prefix(self, prefix: str) -> BucketURL:
        return dataclasses.replace(self, prefix=prefix.strip("/"))


def check_bucket_name(store: str, name: str) -> None:
    """SpecError ``invalid-bucket-url`` unless ``name`` is a valid bucket name in ``store``."""
    if store not in _RULES:
        raise NotSupportedError(
            f"Styx cannot use the bucket store {store!r} yet.",
            f"Use one of: {', '.join(_RULES)}.",
            code="store-not-supported",
        )
    pattern, rule = _RULES[store]
    ip_like = re.fullmatch(r"\d+\.\d+\.\d+\.\d+", name)
    if pattern.match(name) is None or ".." in name or ip_like:
        raise SpecError(
            f"{name!r} is not a valid {store} bucket name.",
            f"Use {rule}, starting and ending with a letter or digit.",
            code=BAD_URL,
        )


def parse_bucket_url(url: str) -> BucketURL:
    """The bucket ``url`` names; SpecError ``invalid-bucket-url`` for a malformed one,
    NotSupportedError for a store Styx does not reach."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise SpecError(f"{url!r} is not a URL.", "Write s3://bucket/path.", code=BAD_URL)
    if scheme in _OTHER_SCHEMES:
        raise NotSupportedError(
            f"Buckets in {_OTHER_SCHEMES[scheme]} ({scheme}://) are not supported yet.",
            "Use an s3://, gs://, r2:// or Azure Blob (https://ACCOUNT.blob.core.windows.net/...) "
            "bucket.",
            code="store-not-supported",
        )
    if scheme == "https":
        host, _, path = rest.partition("/")
        m = _AZURE_HOST.match(host.lower())
        if m is None:
            raise SpecError(
                f"{url!r} is not a bucket URL: of https:// URLs only Azure Blob containers are.",
                "Write https://ACCOUNT.blob.core.windows.net/CONTAINER/path, or s3:// or gs://.",
                code=BAD_URL,
            )
        if "?" in path or "#" in path:  # a SAS token or a fragment: never echoed back
            raise SpecError(
                f"The Azure URL {url.split('?', 1)[0].split('#', 1)[0]!r} carries a query or "
                "fragment (a SAS token?), which a bucket URL may not.",
                "Drop everything from '?' on; Styx gets access from the Azure credentials.",
                code=BAD_URL,
            )
        container, _, prefix = path.partition("/")
        account: str | None = m.group(1)
        store = "azure"
    elif scheme in _SCHEMES:
        store, account = _SCHEMES[scheme], None
        container, _, prefix = rest.partition("/")
    else:
        raise SpecError(
            f"{url!r} has the scheme {scheme}://, which names no bucket store.",
            "Write s3://, gs://, r2:// or https://ACCOUNT.blob.core.windows.net/CONTAINER.",
            code=BAD_URL,
        )
    if not container:
        raise SpecError(f"{url!r} names no bucket.", "Write it as s3://bucket/path.", code=BAD_URL)
    check_bucket_name(store, container)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in prefix) or "//" in ("/" + prefix).rstrip("/"):
        raise SpecError(
            f"The path in {url!r} holds control characters or an empty segment.",
            "Write the object path as a/b/c.",
            code=BAD_URL,
        )
    return BucketURL(store, container, prefix.strip("/"), account)


@dataclasses.dataclass(frozen=True, slots=True)
class StorageMount:
    """What one bucket file mount needs.

    ``bucket`` is where the nodes read from. ``uploads`` are local paths copied into it first
    (a storage object whose source is local). ``create`` says Styx makes the bucket when it is
    missing (a named storage object); otherwise a missing bucket is an error. ``name`` is the
    storage object's name in ``styx storage ls`` (None for a plain URL source, which is not
    recorded). ``store`` None means: chosen from the cluster's infra (``bucket.store`` is then
    a placeholder until :meth:`in_store`).
    """

    dest: str
    mode: str  # COPY, MOUNT or MOUNT_CACHED
    bucket: BucketURL
    store_given: bool
    uploads: tuple[str, ...] = ()
    create: bool = False
    name: str | None = None
    persistent: bool = True
    options: tuple[tuple[str, str], ...] = ()  # config.mount_cached / config.mount, as strings
    read_only: bool = False

    def in_store(self, store: str) -> StorageMount:
        """This mount with its bucket in ``store`` (for a name whose store was not given)."""
        if self.store_given:
            return self
        check_bucket_name(store, self.bucket.bucket)  # checked for this store only now
        if self.bucket.store == store:
            return self
        return dataclasses.replace(self, bucket=dataclasses.replace(self.bucket, store=store))


def default_bucket_name(dest: str, sources: tuple[str, ...], user: str) -> str:
    """A bucket name for a storage object with a local source and no name: stable for the same
    user, sources and destination, valid in every store."""
    digest = hashlib.sha256("\0".join((user, dest, *sources)).encode()).hexdigest()[:10]
    who = re.sub(r"[^a-z0-9]+", "-", user.lower()).strip("-")[:20].rstrip("-") or "user"
    return f"styx-{who}-{digest}"


def storage_of(dest: str, mount: FileMount, user: str = "user") -> StorageMount | None:
    """The storage a ``file_mounts`` entry needs, or None for a local path (synced by rsync)
    or a volume. SpecError for a combination that names no bucket."""
    if mount.is_local or mount.is_volume:
        return None
    sources = (mount.source,) if isinstance(mount.source, str) else tuple(mount.source or ())
    urls = [s for s in sources if is_url(s)]
    local = tuple(os.path.expanduser(s) for s in sources if not is_url(s))
    if mount.is_simple:  # dest: s3://bucket/path -- copied, as SkyPilot does
        return StorageMount(dest, "COPY", parse_bucket_url(urls[0]), store_given=True)
    if urls and (local or len(urls) > 1):
        raise SpecError(
            f"The file mount {dest!r} mixes a bucket URL with other sources.",
            "Give one bucket URL as 'source', or local paths only.",
            code="conflicting-fields",
        )
    opts = dict(mount.config or {})
    cached = dict(opts.get("mount_cached") or {})
    plain = dict(opts.get("mount") or {})
    mode = mount.mode or "MOUNT"
    options = tuple(sorted((k, str(v)) for k, v in cached.items() if k != "read_only"))
    read_only = bool((cached if mode == "MOUNT_CACHED" else plain).get("read_only", False))
    store = mount.store
    if urls:
        bucket = parse_bucket_url(urls[0])
        if store is not None and store != bucket.store:
            raise SpecError(
                f"The file mount {dest!r} says store {store!r} but its source is in {bucket.store}.",
                "Drop 'store', or make it match the source URL.",
                code="conflicting-fields",
            )
        if mount.name is not None and mount.name != bucket.bucket:
            raise SpecError(
                f"The file mount {dest!r} names bucket {mount.name!r} and source {bucket.url}.",
                "Drop 'name' (the source URL names the bucket), or use a local source.",
                code="conflicting-fields",
            )
        return StorageMount(dest, mode, bucket, True, name=mount.name,
                            persistent=mount.persistent is not False, options=options,
                            read_only=read_only)  # fmt: skip
    if store is not None and store not in STORES:
        raise NotSupportedError(
            f"The file mount {dest!r} uses store {store!r}, which Styx does not reach yet.",
            f"Use one of: {', '.join(STORES)}.",
            code="store-not-supported",
        )
    name = mount.name or default_bucket_name(dest, local, user)
    chosen = store or "s3"  # a placeholder until the cluster's infra chooses (in_store)
    if store is not None:
        check_bucket_name(store, name)
    else:  # the cluster's infra chooses the store later: the name must suit at least one
        problems = []
        for candidate in ("gcs", "s3", "azure"):
            try:
                check_bucket_name(candidate, name)
                break
            except SpecError as err:
                problems.append(err)
        else:
            raise problems[1]  # S3's rule, the one most users know
    return StorageMount(
        dest, mode, BucketURL(chosen, name), store is not None, uploads=local, create=True,
        name=name, persistent=mount.persistent is not False, options=options, read_only=read_only,
    )  # fmt: skip


def storage_mounts(file_mounts: dict[str, FileMount], user: str = "user") -> list[StorageMount]:
    """Every bucket mount of a task's ``file_mounts``, in order."""
    out = []
    for dest, mount in file_mounts.items():
        found = storage_of(dest, mount, user)
        if found is not None:
            out.append(found)
    return out
