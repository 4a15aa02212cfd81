"""What gets synced: rsync filter arguments honouring .styxignore, .skyignore and .gitignore.

SkyPilot's rule, which users rely on: if the folder has a ``.skyignore`` (ours: ``.styxignore``),
it alone decides what is left out; otherwise ``.gitignore`` files (at any depth) do.
"""

from __future__ import annotations

from pathlib import Path

IGNORE_FILES = (".styxignore", ".skyignore")


def rsync_filter_args(src: str) -> list[str]:
    """rsync arguments that leave out what the folder's ignore files exclude."""
    root = Path(src)
    if not root.is_dir():
        return []
    for name in IGNORE_FILES:
        path = root / name
        if path.is_file():
            return ["--exclude-from", str(path)]
    args = ["--exclude", ".git/"]
    if (root / ".gitignore").exists() or any(root.glob("*/.gitignore")):
        args += ["--filter", ":- .gitignore"]
    return args
