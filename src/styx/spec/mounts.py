"""What a task brings to its nodes: the workdir, file mounts, volumes, and secrets.

``file_mounts`` maps a destination path on the nodes to a local path, a bucket URL
(``s3://``, ``gs://``, ``r2://``, ``https://``...), or a storage mapping (``source``,
``name``, ``store``, ``mode``, ``persistent``, ``config``). ``volumes`` maps a mount path to
a volume name or a volume mapping.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from styx.spec.check import Value
from styx.spec.frozen import FrozenDict, freeze, thaw

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
MOUNT_MODES = ("MOUNT", "COPY", "MOUNT_CACHED")
STORES = ("s3", "gcs", "azure", "r2", "ibm", "oci", "nebius", "coreweave", "volume")


def is_url(source: str) -> bool:
    """True for ``scheme://...`` sources (buckets and web URLs), False for local paths."""
    return _URL.match(source) is not None


def check_remote_path(v: Value, path: str) -> None:
    """Destinations on the nodes must be absolute or start with ``~``; a leading ``$``
    (a variable filled in from ``envs`` later) is checked after substitution."""
    if path.startswith(("/", "~", "$")) and "\x00" not in path:
        return
    v.bad_value(
        f"The path '{path}' in '{v.name}' is not absolute.",
        "Write the path on the nodes as /absolute/path or ~/path.",
    )


@dataclasses.dataclass(frozen=True, slots=True)
class GitWorkdir:
    """A workdir cloned from git instead of synced from a local directory."""

    url: str
    ref: str | None = None

    def to_yaml(self) -> dict[str, str]:
        return {"url": self.url} if self.ref is None else {"url": self.url, "ref": self.ref}


#: The URL schemes git can fetch from that a git workdir may name.
GIT_SCHEMES = ("https", "http", "ssh", "git", "file")
_GIT_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<auth>[^/@]*@)?(?P<host>[^/]*)")
_SCP_LIKE = re.compile(r"(?:[A-Za-z0-9._~-]+@)?[A-Za-z0-9._-]+:(?!//)[^\s]+")


def is_scp_like(url: str) -> bool:
    """``[user@]host:path``, git's short form of an ssh URL."""
    return "://" not in url and _SCP_LIKE.fullmatch(url) is not None


def git_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a git workdir's URL (one sentence), or None when it can: an
    ``https``/``http``/``ssh``/``git``/``file`` URL or an scp-like ``user@host:path``, with no
    password inside it (tokens go in ``GIT_TOKEN``) and nothing git would read as an option."""
    if not url or url.startswith("-") or any(c.isspace() or ord(c) < 0x20 for c in url):
        return (
            f"The git URL {url!r} is empty, starts with '-' or holds spaces or control characters."
        )
    if is_scp_like(url):
        return None
    m = _GIT_URL.match(url)
    if m is None:
        return f"'{url}' is not a git URL."
    if m["scheme"].lower() not in GIT_SCHEMES:
        return (
            f"The git URL '{url}' uses the scheme '{m['scheme']}', which git workdirs do not fetch."
        )
    if m["scheme"].lower() != "file" and not m["host"]:
        return f"The git URL '{url}' names no host."
    if m["auth"] and ":" in m["auth"]:
        return "The git URL holds a password."  # never echo it
    return None


def parse_workdir(v: Value) -> str | GitWorkdir:
    """``workdir``: a local directory, or ``{url, ref}`` for a git repository. A malformed URL
    is SpecError ``invalid-git-url`` (one with an unfilled ``$VAR`` is checked at launch)."""
    if isinstance(v.raw, dict):
        f = v.fields(("url", "ref"))
        if "url" not in f:
            v.fail("missing-field", f"'{v.name}' needs a 'url'.", "Add the git URL as 'url'.")
        url = f["url"].string().strip()
        problem = None if "$" in url else git_url_problem(url)
        if problem:
            f["url"].fail(
                "invalid-git-url",
                problem,
                "Write an https://, ssh://, git:// or file:// URL, or user@host:path; "
                "give a token as the GIT_TOKEN secret.",
            )
        ref = f["ref"].string().strip() if "ref" in f else None
        if ref is not None and (ref.startswith("-") or any(c.isspace() for c in ref)):
            f["ref"].bad_value(
                f"The git ref {ref!r} starts with '-' or holds spaces.",
                "Write a branch, a tag or a commit sha as 'ref'.",
            )
        return GitWorkdir(url, ref)
    return v.string(hint="Write a local directory, or a mapping with the git 'url' and 'ref'.")


@dataclasses.dataclass(frozen=True, slots=True)
class FileMount:
    """One ``file_mounts`` entry; a plain local or bucket source has only ``source`` set."""

    source: str | tuple[str, ...] | None = None
    name: str | None = None
    store: str | None = None
    mode: str | None = None
    persistent: bool | None = None
    config: FrozenDict[str, Any] | None = None
    #: Written as a mapping (``{source: ...}``), even one with nothing but a source: a bucket
    #: URL written so is a storage object (MOUNT by default), not a plain copy.
    mapping: bool = False

    @property
    def is_simple(self) -> bool:
        """Written as ``dest: source``."""
        return isinstance(self.source, str) and dataclasses.replace(self, source=None) == _EMPTY

    @property
    def is_local(self) -> bool:
        """A local file or directory copied to the nodes (rsync), nothing else: written as
        ``dest: path``, or as ``{source: path, mode: COPY}`` with no bucket named."""
        if not isinstance(self.source, str) or is_url(self.source):
            return False
        if self.is_simple:
            return True
        rest = dataclasses.replace(self, source=None, mode=None, mapping=False)
        return self.mode == "COPY" and rest == _EMPTY

    @property
    def is_volume(self) -> bool:
        return self.store == "volume"

    def to_yaml(self) -> Any:
        if self.is_simple:
            return self.source
        out = {
            "source": thaw(self.source),
            "name": self.name,
            "store": self.store,
            "mode": self.mode,
            "persistent": self.persistent,
            "config": thaw(self.config),
        }
        return {k: x for k, x in out.items() if x is not None}


_EMPTY = FileMount()


def _source(v: Value) -> str | tuple[str, ...]:
    if isinstance(v.raw, list):
        items = tuple(i.string().strip() for i in v.items())
        if not items:
            v.bad_value(f"'{v.name}' lists no sources.", "List at least one path or remove it.")
        return items
    return v.string(hint="Write a local path or a bucket URL such as s3://bucket/path.").strip()


def _storage_config(v: Value) -> FrozenDict[str, Any]:
    from styx.spec.sections import STORAGE_CONFIG

    result: FrozenDict[str, Any] = freeze(STORAGE_CONFIG.check(v))
    return result


def parse_file_mount(v: Value) -> FileMount:
    """One ``file_mounts`` value: a source string or a storage mapping."""
    if not isinstance(v.raw, dict):
        return FileMount(_source(v))
    f = v.fields(("source", "name", "store", "mode", "persistent", "config"))
    mount = FileMount(
        source=_source(f["source"]) if "source" in f else None,
        name=f["name"].string().strip() if "name" in f else None,
        store=f["store"].choice(STORES) if "store" in f else None,
        mode=f["mode"].choice(MOUNT_MODES) if "mode" in f else None,
        persistent=f["persistent"].boolean() if "persistent" in f else None,
        config=_storage_config(f["config"]) if "config" in f else None,
        mapping=True,
    )
    if mount.source is None and mount.name is None and not mount.is_volume:
        v.fail(
            "missing-field",
            f"'{v.name}' needs a 'source' or a 'name'.",
            "Give the local path or bucket URL as 'source', or a bucket 'name'.",
        )
    return mount


def check_destination(v: Value, path: str) -> None:
    """A file mount's destination: absolute, ``~/...``, or relative to the node's home; never
    empty, and free of control characters (where it may land is checked per infra, by
    :mod:`styx.cluster.dests`)."""
    if path.strip() and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        return
    v.bad_value(
        f"The destination {path!r} in '{v.name}' is empty or holds control characters.",
        "Write the path on the nodes as /absolute/path or ~/path.",
    )


def parse_file_mounts(v: Value) -> FrozenDict[str, FileMount]:
    """``file_mounts``: destination paths on the nodes to sources."""
    mounts: dict[str, FileMount] = {}
    for dest, item in v.entries(what="paths on the nodes to sources").items():
        check_destination(item, dest)
        if item.raw is None:
            item.fail(
                "missing-field", f"'{item.name}' has no source.", "Give a source path or URL."
            )
        mounts[dest] = parse_file_mount(item)
    return FrozenDict(mounts)


def parse_volumes(v: Value) -> FrozenDict[str, Any]:
    """``volumes``: mount paths to a volume name or a volume mapping."""
    volumes: dict[str, Any] = {}
    for path, item in v.entries(what="mount paths to volumes").items():
        check_remote_path(item, path)
        if item.raw is None:
            item.fail("missing-field", f"'{item.name}' names no volume.", "Give the volume name.")
        from styx.spec.sections import VOLUME

        volumes[path] = freeze(VOLUME.check(item))
    return FrozenDict(volumes)


@dataclasses.dataclass(frozen=True, slots=True)
class DataSize:
    """SkyPilot's ``inputs``/``outputs``: one path and its estimated size in GB, used by the
    optimizer to price data egress."""

    path: str
    size_gb: float

    def to_yaml(self) -> dict[str, float | int]:
        size = self.size_gb
        return {self.path: int(size) if float(size).is_integer() else size}


def parse_data_size(v: Value) -> DataSize:
    """``inputs``/``outputs``: exactly one ``{path: size_gb}`` entry."""
    entries = v.entries(what="one path to its size in GB")
    if len(entries) != 1:
        v.bad_value(f"'{v.name}' must have exactly one entry.", "Write it as {path: size_in_gb}.")
    ((path, size),) = entries.items()
    return DataSize(path, size.number(minimum=0))


@dataclasses.dataclass(frozen=True, slots=True)
class Secret:
    """A secret value. ``str()`` and ``repr()`` print ``<redacted>``; :meth:`reveal` gives
    the value to the code that must hand it to the job."""

    _value: str

    def reveal(self) -> str:
        """The secret itself; only for handing it to the job's environment."""
        return self._value

    def __repr__(self) -> str:
        return "<redacted>"

    __str__ = __repr__
