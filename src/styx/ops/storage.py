"""Buckets in a launch, and the ``styx storage`` verbs.

- :func:`check` runs before anything is provisioned: every bucket URL parses, every store a
  mount names has credentials, every bucket a mount reads exists and these credentials may
  read it. A missing bucket is fine only for a named storage object (Styx makes it).
- :func:`sync` runs in the "sync file mounts" stage, once the cluster's infra is known: it
  chooses the store of mounts that name none, makes missing buckets, uploads local sources,
  records each named storage object, and sets up every mount on every node
  (:mod:`styx.cluster.bucket_mounts`).
- :func:`release` runs before a cluster is stopped or torn down: pending cached writes are
  uploaded, then every mount is unmounted. :func:`after_down` deletes the buckets Styx made
  for ``persistent: false`` storage once no cluster uses them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from styx.errors import NotFoundError, SpecError, StyxError

if TYPE_CHECKING:
    from styx.ops.pipeline import Pipeline
    from styx.providers.base import ClusterHandle, Provider
    from styx.spec.buckets import StorageMount
    from styx.spec.task import Task
    from styx.state.db import Database
    from styx.state.storage import StorageRecord

#: How long a release waits for cached writes to reach the bucket.
FLUSH_WAIT_S = 600.0


def mounts_of(task: Task) -> list[StorageMount]:
    """The task's bucket mounts (SpecError for a malformed one)."""
    from styx.ops.common import user_name
    from styx.spec.buckets import storage_mounts

    found = storage_mounts(dict(task.file_mounts), user_name())
    for m in found:
        if any(c.isspace() for c in m.dest):
            raise SpecError(
                f"The bucket mount destination {m.dest!r} has whitespace.",
                "Mount the bucket at a path without spaces.",
                code="mount-destination-invalid",
            )
    return found


def _credentials(name: str, why: str) -> None:
    from styx.providers.stores import StoreError, problem, store

    why_not = problem(name)
    if why_not is not None:
        raise StoreError(
            f"The {store(name).title} store cannot be used for {why}: {why_not}.",
            "Set up its credentials (`styx check` lists what each store sees).",
            code="store-credentials-missing",
        )


def check(task: Task) -> list[StorageMount]:
    """The checks before provisioning (see the module docstring); returns the mounts."""
    from styx.providers.stores import FALLBACK_ORDER, StoreError, problem, store

    found = mounts_of(task)
    for m in found:
        if not m.store_given:
            if not any(problem(s) is None for s in FALLBACK_ORDER):
                raise StoreError(
                    f"The storage {m.name!r} for {m.dest!r} names no store, and no store has "
                    "credentials here.",
                    "Set 'store:' and that store's credentials (see `styx check`).",
                    code="store-credentials-missing",
                )
            _check_uploads(m)
            continue
        _credentials(m.bucket.store, f"{m.bucket.url} ({m.dest})")
        exists = store(m.bucket.store).bucket_exists(m.bucket)
        if not exists and not m.create:
            raise NotFoundError(
                f"The bucket {m.bucket.url} for {m.dest!r} does not exist.",
                "Check the name, or give the storage a 'name' (and no URL) so Styx makes it.",
                code="bucket-not-found",
            )
        _check_uploads(m)
    return found


def _check_uploads(m: StorageMount) -> None:
    for path in m.uploads:
        if not os.path.exists(path):
            raise SpecError(
                f"The storage source {path!r} for {m.dest!r} does not exist.",
                "Fix the local path, or remove it from 'source'.",
                code="mount-source-not-found",
            )


def _region(handle: ClusterHandle) -> str | None:
    region = (handle.extra or {}).get("region")
    return str(region) if region else None


def prepare(
    db: Database, pipe: Pipeline, task: Task, handle: ClusterHandle, provider: Provider
) -> tuple[str, list[Any], list[StorageMount]]:
    """Choose stores, make buckets, upload, record: the rclone config text and node mounts."""
    from styx.cluster import bucket_mounts as bm
    from styx.ops.common import user_name
    from styx.ops.stages import _last_use
    from styx.providers.stores import StoreError, store, store_for_infra
    from styx.state import storage as st

    found = check(task)
    chosen = store_for_infra(provider.name)
    folders = provider.node_folders(handle.cluster_name, handle)
    sections: dict[str, dict[str, str]] = {}
    node_mounts = []
    made: list[StorageMount] = []
    for m in found:
        if not m.store_given:
            if chosen is None:
                raise StoreError(
                    f"No store can hold the storage {m.name!r}.", "Set 'store:'.",
                    code="store-credentials-missing",
                )  # fmt: skip
            m = m.in_store(chosen)
            _credentials(chosen, f"the storage {m.name!r}")
        s = store(m.bucket.store)
        m = dataclasses.replace(m, bucket=s.complete(m.bucket))
        if m.create and not s.bucket_exists(m.bucket):
            with pipe.stage("make bucket", m.bucket.url):
                s.create_bucket(m.bucket, _region(handle) if provider.name in ("aws",) else None)
            made.append(m)
        if m.name is not None:
            st.save_storage(
                db, m.name, store=m.bucket.store, url=m.bucket.url, region=_region(handle),
                status=st.UPLOADING if m.uploads else st.READY, created=m in made,
                persistent=m.persistent, sources=m.uploads, cluster=handle.cluster_name,
                last_use=_last_use(), user_name=user_name(),
            )  # fmt: skip
        if m.uploads:
            with pipe.stage("upload", f"{', '.join(m.uploads)} -> {m.bucket.url}"):
                try:
                    s.upload(m.uploads, m.bucket, None)
                except StyxError:
                    if m.name is not None:
                        st.set_status(db, m.name, st.UPLOAD_FAILED)
                    raise
            if m.name is not None:
                st.set_status(db, m.name, st.READY)
        remote = _remote_name(m.bucket.url)
        sections[remote] = s.rclone_remote(m.bucket)
        dest = _node_path(m.dest, folders)
        flags = bm.flags_for(m.mode, m.options, m.read_only)
        node_mounts.append(bm.NodeMount(dest, m.mode, f"{remote}:{s.rclone_path(m.bucket)}", flags))
    return bm.config_text(sections), node_mounts, made


def _remote_name(url: str) -> str:
    """The rclone remote of a bucket: one name per bucket URL, so that the sections of every
    task on a cluster (a launch's, an exec's) live side by side in its config."""
    import hashlib

    return "b" + hashlib.sha256(url.encode()).hexdigest()[:10]


def _node_path(dest: str, folders: Any) -> str:
    from styx.cluster.dests import resolve
    from styx.spec.yamlio import format_path

    try:
        return resolve(dest, folders).path
    except SpecError as err:
        err.details["path"] = format_path(("file_mounts", dest))
        raise


def sync(
    db: Database, pipe: Pipeline, task: Task, handle: ClusterHandle, provider: Provider
) -> ClusterHandle:
    """Every bucket mount of ``task`` on every node (see the module docstring); returns the
    handle, marked as having bucket mounts (so stop and down release them)."""
    from styx.cluster import bucket_mounts as bm

    config, node_mounts, made = prepare(db, pipe, task, handle, provider)
    if not node_mounts:
        return handle
    handle = _mark(db, handle, node_mounts)
    runners = [provider.runner(handle, i) for i in range(len(handle.nodes))]
    modes = sorted({m.mode for m in node_mounts})
    keep = [_node_mount(m).id for m in handle.extra.get("bucket_mounts") or ()]
    try:
        with pipe.stage("bucket mounts", f"{len(node_mounts)} mount(s), {'/'.join(modes)}"):
            bm.apply_all(runners, handle.agent_root, config, node_mounts, keep=keep)
    except StyxError as err:
        err.details.setdefault("buckets_made", [m.bucket.url for m in made])
        raise
    return handle


def _mark(db: Database, handle: ClusterHandle, mounts: Sequence[Any]) -> ClusterHandle:
    """Record the cluster's mounts (no credential: those stay on the nodes) in its handle, so
    that stop and down release them and start mounts them again."""
    from styx.state.clusters import update_cluster

    kept = {m["dest"]: m for m in (handle.extra or {}).get("bucket_mounts") or ()}
    kept.update({m.dest: dataclasses.asdict(m) for m in mounts})
    extra = {**(handle.extra or {}), "bucket_mounts": list(kept.values())}
    if extra != handle.extra:
        handle = dataclasses.replace(handle, extra=extra)
        update_cluster(db, handle.cluster_name, handle=handle.to_json())
    return handle


def _node_mount(recorded: dict[str, Any]) -> Any:
    from styx.cluster import bucket_mounts as bm

    return bm.NodeMount(recorded["dest"], recorded["mode"], recorded["source"],
                        tuple(recorded.get("flags") or ()))  # fmt: skip


def remount(handle: ClusterHandle, provider: Provider) -> None:
    """Mount the cluster's buckets again after a start (copies stayed on the disks). The
    rclone config is still on the nodes; a MOUNT_CACHED cache uploads what was pending."""
    from styx.cluster import bucket_mounts as bm
    from styx.cluster.runtime import each

    mounts = [_node_mount(m) for m in (handle.extra or {}).get("bucket_mounts") or ()]
    mounts = [m for m in mounts if m.mode != "COPY"]

    def one(i: int) -> None:
        for m in mounts:
            bm.mount_on_node(provider.runner(handle, i), handle.agent_root, m)

    each(list(range(len(handle.nodes))), one, "Mounting buckets again")


def discard_made(db: Database, err: StyxError) -> None:
    """After a failed launch: delete the buckets that launch made (nothing is left behind)."""
    from styx.providers.stores import store
    from styx.spec.buckets import parse_bucket_url
    from styx.state import storage as st

    for url in err.details.pop("buckets_made", ()):
        bucket = parse_bucket_url(url)
        with contextlib.suppress(StyxError):
            store(bucket.store).delete_bucket(bucket)
            for rec in st.list_storage(db):
                if rec.url == url:
                    st.delete_storage(db, rec.name)


def release(handle: ClusterHandle, provider: Provider, nodes: Sequence[int] | None = None) -> int:
    """Flush and unmount every bucket mount of the cluster (nodes that cannot be reached are
    skipped: their mounts died with them). Returns the files still pending at the deadline."""
    from styx.cluster import bucket_mounts as bm
    from styx.cluster.runtime import each

    if not (handle.extra or {}).get("bucket_mounts"):
        return 0
    lost = [0]

    def one(i: int) -> None:
        with contextlib.suppress(StyxError):
            lost[0] += bm.release(provider.runner(handle, i), handle.agent_root, FLUSH_WAIT_S)

    each(list(range(len(handle.nodes))) if nodes is None else list(nodes), one, "Unmounting")
    return lost[0]


def after_down(db: Database, cluster: str) -> list[str]:
    """Forget ``cluster`` as a user of its storage, and delete the buckets Styx made for
    ``persistent: false`` storage that no cluster uses now. Returns the deleted URLs."""
    from styx.state import storage as st

    deleted = []
    for rec in st.detach_cluster(db, cluster):
        if rec.created and not rec.persistent and not rec.clusters:
            _delete(db, rec)
            deleted.append(rec.url)
    return deleted


def _delete(db: Database, rec: StorageRecord) -> None:
    from styx.providers.stores import store
    from styx.spec.buckets import parse_bucket_url
    from styx.state import storage as st

    if rec.created:
        bucket = parse_bucket_url(rec.url)
        store(bucket.store).delete_bucket(bucket)
    st.delete_storage(db, rec.name)


# --- the verbs ------------------------------------------------------------------------------------


def ls(db: Database) -> list[StorageRecord]:
    """``styx storage ls``."""
    from styx.state.storage import list_storage

    return list_storage(db)


def delete(db: Database, names: Sequence[str], *, all_: bool = False) -> list[tuple[str, str]]:
    """``styx storage delete``: ``(name, what was done)`` for each. A storage in use by a
    cluster is refused (ConflictError ``storage-in-use``)."""
    from styx.errors import ConflictError
    from styx.state import storage as st

    records = st.list_storage(db)
    if all_:
        chosen = records
    else:
        by_name = {r.name: r for r in records}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise NotFoundError(
                f"No storage called {missing[0]!r}.",
                "See `styx storage ls` for the names.",
                code="storage-not-found",
            )
        chosen = [by_name[n] for n in names]
    busy = [r for r in chosen if r.clusters]
    if busy:
        raise ConflictError(
            f"The storage {busy[0].name!r} is mounted by cluster(s) {', '.join(busy[0].clusters)}.",
            f"Tear those down first (`styx down {busy[0].clusters[0]}`).",
            code="storage-in-use",
        )
    out = []
    for rec in chosen:
        _delete(db, rec)
        out.append((rec.name, "deleted" if rec.created else "forgotten (the bucket is not Styx's)"))
    return out


def mount_states(handle: ClusterHandle, provider: Provider) -> list[Any]:
    """Every bucket mount of the cluster on every node, asked of all nodes at once; a node
    that does not answer gets one row per mount it should have, marked unreachable."""
    from concurrent.futures import ThreadPoolExecutor

    from styx.cluster import bucket_mounts as bm

    dests = [str(m["dest"]) for m in (handle.extra or {}).get("bucket_mounts") or ()]

    def one(i: int) -> list[Any]:
        runner = provider.runner(handle, i)
        try:
            return list(bm.states(runner, handle.agent_root))
        except StyxError:
            return [bm.MountState(runner.node_name, d, False, 0, 0, reachable=False) for d in dests]

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(handle.nodes)))) as pool:
        return [s for found in pool.map(one, range(len(handle.nodes))) for s in found]
