"""Schemas of the small free-form sub-sections of a task, imported only when present.

Kept out of :mod:`styx.spec.mounts` and :mod:`styx.spec.resources` so that importing the
task model does not build schema objects that most tasks never use.
"""

from __future__ import annotations

from styx.spec.schema import Anything, Bool, Fields, Int, ListOf, MapOf, OneOf, Str

ACCELERATOR_ARGS = Fields(
    {
        "runtime_version": Str(),
        "tpu_name": Str(),
        "tpu_vm": Bool(),
        "gcp_queued_resource": Bool(),
    }
)
_SIZE = OneOf((Int(minimum=1), Str(pattern=r"\s*\d+(\.\d+)?\s*[a-zA-Z]*\s*")), "a size")
STORAGE_CONFIG = Fields(
    {
        "disk_size": _SIZE,
        "disk_tier": Str(),
        "storage_type": Str(),
        "attach_mode": Str(),
        "mount_cached": Fields(
            {
                "transfers": Int(minimum=1),
                "buffer_size": Str(),
                "vfs_cache_max_size": Str(),
                "vfs_cache_max_age": Str(),
                "vfs_read_ahead": Str(),
                "vfs_read_chunk_size": Str(),
                "vfs_read_chunk_streams": Int(minimum=0),
                "vfs_write_back": Str(),
                "read_only": Bool(),
            }
        ),
        "mount": Fields({"read_only": Bool(), "hf_mount_args": ListOf(Str())}),
    }
)
VOLUME = OneOf(
    (
        Str(),
        Fields(
            {
                "name": Str(),
                "type": Str(),
                "size": _SIZE,
                "sub_path": Str(),
                "use_existing": Bool(),
                "config": MapOf(Anything()),
                "labels": MapOf(Str()),
            }
        ),
    ),
    "a volume name or a volume mapping",
)
