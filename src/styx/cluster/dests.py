"""Where a workdir or file mount may land on a node, and whether its sync may delete there.

A sync copies with rsync; with ``--delete`` it also removes what the source lacks. Both are
only safe in folders Styx owns, so every destination goes through :func:`resolve` before a
single byte moves, and again (with symlinks followed, where the node is this machine) right
before its sync:

- ``~``, ``~/x`` and relative paths mean the node's home. On the local cloud that is the
  cluster's own home under ``$STYX_HOME/clusters/<name>/home``, as a remote node has its own.
- ``~user`` paths are refused: another user's home is never the cluster's.
- The root folder, the node's home itself (or a folder above it) and Styx's runtime folders
  (or any folder inside or above them) are refused on every infra.
- On the local cloud (``confined``), a destination must lie in the cluster's own folders or in
  a host folder named in ``local.allowed_host_paths``; system folders, ``$HOME`` itself and
  ``STYX_HOME`` stay refused even there.
- Only a destination inside a folder Styx made for the cluster (``owned``) is synced with
  ``--delete``; anywhere else the sync only adds and updates files.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Callable, Sequence

from styx.errors import SpecError

#: What ``~`` is replaced with while the node's home is not known yet (a remote node before it
#: is provisioned); shown as ``~`` again in messages.
_SYMBOLIC_HOME = "/\x01home"

#: Host folders no local cluster may ever write to, even when config allows a folder above.
SYSTEM_FOLDERS = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run",
    "/sbin", "/srv", "/sys", "/usr", "/var/lib", "/var/log", "/var/run", "/var/spool",
)  # fmt: skip

REFUSED = "mount-destination-refused"
INVALID = "mount-destination-invalid"


@dataclasses.dataclass(frozen=True, slots=True)
class NodeFolders:
    """The folders of one cluster's node that decide where a sync may write.

    ``home`` is what ``~`` means there (``"~"`` while unknown). ``runtime`` are Styx's own
    folders (never written to by a sync). ``owned`` are folders Styx made for this cluster, where
    a sync may delete. ``confined`` nodes accept only destinations inside ``owned`` or
    ``allowed``; ``protected`` folders are refused even inside ``allowed`` (``guarded`` only
    themselves and the folders above them).
    """

    home: str
    runtime: tuple[str, ...] = ()
    owned: tuple[str, ...] = ()
    confined: bool = False
    allowed: tuple[str, ...] = ()
    protected: tuple[str, ...] = ()
    guarded: tuple[str, ...] = ()
    #: Where the node is this machine: follows symlinks of the path's existing part.
    realpath: Callable[[str], str] | None = dataclasses.field(default=None, compare=False)

    def with_home(self, home: str) -> NodeFolders:
        """These folders with ``~`` made concrete (a remote node once it is known)."""
        if self.home != "~":
            return self

        def fix(paths: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(_expand(p, home) for p in paths)

        return dataclasses.replace(
            self,
            home=home,
            runtime=fix(self.runtime),
            owned=fix(self.owned),
            allowed=fix(self.allowed),
            protected=fix(self.protected),
            guarded=fix(self.guarded),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Destination:
    """Where a sync writes (an absolute path, or ``~/...`` while the home is not known) and
    whether it may delete there."""

    path: str
    delete: bool


def _expand(path: str, home: str) -> str:
    if path == "~" or path.startswith("~/"):
        return home.rstrip("/") + path[1:] if home != "/" else "/" + path[2:]
    if not path.startswith("/"):
        return posixpath.join(home, path)
    return path


def _normal(path: str) -> str:
    out = posixpath.normpath(path)
    if out.startswith("//"):  # POSIX keeps a leading '//'; Linux treats it as '/'
        out = "/" + out.lstrip("/")
    return out


def _inside(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or lies under it (both normalized)."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _show(path: str) -> str:
    if path == _SYMBOLIC_HOME:
        return "~"
    if path.startswith(_SYMBOLIC_HOME + "/"):
        return "~" + path[len(_SYMBOLIC_HOME) :]
    return path


def _refuse(dest: str, why: str, hint: str, code: str = REFUSED) -> SpecError:
    return SpecError(
        f"The destination '{dest}' {why}.",
        hint,
        code=code,
        details={"destination": dest},
    )


_HINT = "Write a folder inside the node's home instead, such as ~/data."


def resolve(dest: str, folders: NodeFolders, *, what: str = "file_mounts") -> Destination:
    """Where ``dest`` (a destination as the user wrote it) lands on the node, or SpecError
    ``mount-destination-refused`` / ``mount-destination-invalid`` saying why it may not."""
    if not dest or any(ord(c) < 0x20 or ord(c) == 0x7F for c in dest):
        raise _refuse(
            repr(dest)[1:-1],
            "is empty or holds control characters",
            "Write a plain path such as ~/data or /data.",
            INVALID,
        )
    if dest.startswith("~") and dest != "~" and not dest.startswith("~/"):
        raise _refuse(
            dest,
            "names another user's home folder",
            "Write ~/path (the cluster's own home) or an absolute path.",
            INVALID,
        )
    home = _SYMBOLIC_HOME if folders.home == "~" else _normal(folders.home)
    f = folders.with_home(home) if folders.home == "~" else folders
    path = _normal(_expand(dest, home))
    if folders.realpath is not None and not path.startswith(_SYMBOLIC_HOME):
        path = _normal(folders.realpath(path))
    shown = _show(path)
    label = dest if shown == dest.rstrip("/") or dest in ("~", "~/") else f"{dest}' ('{shown}"
    if path == "/":
        raise _refuse(label, "is the root folder", _HINT)
    if _inside(home, path):
        raise _refuse(label, "is the node's home folder itself, or a folder above it", _HINT)
    for folder in _norm_all(f.runtime):
        if _inside(path, folder) or _inside(folder, path):
            raise _refuse(
                label,
                f"would overwrite Styx's runtime on the node ({_show(folder)})",
                "Choose a destination outside ~/.styx and the folders above it.",
            )
    owned = any(_inside(path, o) for o in _norm_all(f.owned))
    if owned:
        return Destination(shown, delete=True)
    if f.confined:
        for folder in _norm_all(f.guarded):
            if _inside(folder, path):
                raise _refuse(label, f"is {folder} or a folder above it", _HINT)
        for folder in (*SYSTEM_FOLDERS, *_norm_all(f.protected)):
            if _inside(path, folder) or _inside(folder, path):
                raise _refuse(label, f"is a system or Styx folder ({folder})", _HINT)
        if not any(_inside(path, a) for a in _norm_all(f.allowed)):
            raise _refuse(
                label,
                f"is outside the local cluster's own folders (its home is {_show(home)})",
                f"Use ~/... in {what}, or allow the host folder in config.yaml under "
                "local.allowed_host_paths.",
            )
    return Destination(shown, delete=False)


def _norm_all(paths: Sequence[str]) -> list[str]:
    return [_normal(p) for p in paths]


def check_allowed_host_paths(paths: Sequence[str], home: str, styx_home: str) -> None:
    """Refuse a ``local.allowed_host_paths`` entry that no config may allow: ``/``, a system
    folder, ``$HOME`` or a folder above it, ``STYX_HOME`` or anything in it or above it."""
    from styx.errors import ConfigError

    for raw in paths:
        path = _normal(_expand(raw, home)) if raw.startswith(("/", "~")) else None
        bad = (
            path is None
            or path == "/"
            or _inside(_normal(home), path)
            or _inside(path, _normal(styx_home))
            or _inside(_normal(styx_home), path)
            or any(_inside(path, s) or _inside(s, path) for s in SYSTEM_FOLDERS)
        )
        if bad:
            raise ConfigError(
                f"local.allowed_host_paths lists '{raw}', which no cluster may write to.",
                "List absolute folders of your own data, not /, system folders, your home "
                "itself or STYX_HOME.",
                details={"reason": "invalid-value", "path": raw},
            )
