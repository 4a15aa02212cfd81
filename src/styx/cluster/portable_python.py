"""Styx's own runtime Python, for nodes whose image has none that fits (no Python, an old one,
or one without ``venv``/``ensurepip``): images users bring must work as they are.

The archive has python-build-standalone's ``install_only`` layout (one top folder
``python/`` with ``bin/python3``). It is, in order:

1. the file ``STYX_RUNTIME_PYTHON`` names (e.g. a python-build-standalone release);
2. else built once from the interpreter Styx runs in, when that one is a self-contained
   install (pyenv, uv or python-build-standalone; not the system's ``/usr``): its prefix
   without ``site-packages`` and tests, with the executable's absolute library path rewritten
   to ``$ORIGIN/../lib`` (the extension modules' to ``$ORIGIN/../..``) so it runs from any
   folder, and the shared libraries its extension modules link to that are not glibc's
   (OpenSSL, libffi, SQLite, zlib...) copied into its ``lib/``: an image without Python rarely
   has them, and Ray's agents need ``ssl``. Cached in ``~/.styx/cache``.

The node unpacks it into ``~/.styx/python`` (``tar`` and ``gzip`` are all it needs).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from styx import paths
from styx.errors import NotSupportedError

#: Where the node keeps it, under its home.
NODE_DIR = ".styx/python"
_EXCLUDES = (
    "site-packages/*", "test/", "tests/", "__pycache__/", "idlelib/", "tkinter/", "turtledemo/",
    "lib2to3/tests/", "*.a", "include/", "share/", "pkgconfig/",
)  # fmt: skip


def version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def node_python(home: str) -> str:
    return f"{home}/{NODE_DIR}/bin/python{version()}"


def archive() -> Path:
    """The archive to unpack on nodes (built and cached at first use)."""
    configured = os.environ.get("STYX_RUNTIME_PYTHON")
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise NotSupportedError(
                f"STYX_RUNTIME_PYTHON names {path}, which is not a file.",
                "Point it at a python-build-standalone install_only .tar.gz, or unset it.",
                code="runtime-python-unavailable",
            )
        return path
    name = f"python-{platform.python_version()}-{platform.machine()}-{_LAYOUT}.tar.gz"
    cache = paths.home() / "cache" / name
    if cache.is_file():
        return cache
    prefix = Path(sys.base_prefix)
    exe = prefix / "bin" / f"python{version()}"
    stdlib = Path(
        sysconfig.get_paths(vars={"base": str(prefix), "installed_base": str(prefix)})["stdlib"]
    )
    if (
        str(prefix) in ("/usr", "/usr/local")
        or not exe.is_file()
        or not (stdlib / "os.py").is_file()
    ):
        raise NotSupportedError(
            f"The node has no usable Python, and this Python ({sys.base_prefix}) is the system's, "
            "which cannot be copied to another machine.",
            "Set STYX_RUNTIME_PYTHON to a python-build-standalone install_only archive for "
            f"Python {version()}, or use an image with Python {version()}.",
            code="runtime-python-unavailable",
        )
    cache.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache.parent) as tmp:
        staged = Path(tmp) / "python"
        argv = ["rsync", "-a", *(f"--exclude={e}" for e in _EXCLUDES), f"{prefix}/", f"{staged}/"]
        subprocess.run(argv, check=True, capture_output=True, timeout=600)
        for binary in (staged / "bin").glob("python3*"):
            if binary.is_file() and not binary.is_symlink():
                _relocate(binary, str(prefix))
        dynload = staged / stdlib.relative_to(prefix) / "lib-dynload"
        for module in dynload.glob("*.so"):
            _relocate(module, str(prefix), b"$ORIGIN/../..")
        _bundle_libraries(dynload, staged / "lib")
        link = staged / "bin" / "python3"
        if not link.exists():
            link.symlink_to(f"python{version()}")
        part = cache.with_suffix(".part")
        subprocess.run(
            ["tar", "-c", "-I", "gzip -1", "-f", str(part), "-C", tmp, "python"],
            check=True, capture_output=True, timeout=600,
        )  # fmt: skip
        part.rename(cache)
    return cache


#: Bumped when the archive's layout changes, so that an older cached copy is not reused.
_LAYOUT = "2"
#: Parts of glibc (never copied: they must be the node's own) and the loader.
_GLIBC = (
    "linux-vdso", "ld-linux", "libc.so", "libm.so", "libpthread.so", "libdl.so", "librt.so",
    "libresolv.so", "libutil.so", "libanl.so", "libmvec.so", "libnss_", "libthread_db",
    "libBrokenLocale",
)  # fmt: skip
#: Extension modules whose libraries are a desktop's (X11, Tk): not for a node.
_SKIP_MODULES = ("_tkinter",)


def _bundle_libraries(dynload: Path, lib: Path) -> None:
    """Copy into ``lib`` what the extension modules in ``dynload`` link to (``ldd``), except
    glibc and what ``lib`` has; named by soname, where their relocated run path finds them."""
    if shutil.which("ldd") is None:
        return
    for module in sorted(dynload.glob("*.so")):
        if module.name.startswith(_SKIP_MODULES):
            continue
        out = subprocess.run(["ldd", str(module)], capture_output=True, text=True, timeout=60)
        for line in out.stdout.splitlines():
            parts = line.split()
            if len(parts) < 3 or parts[1] != "=>" or not parts[2].startswith("/"):
                continue
            soname, path = parts[0], Path(parts[2])
            if soname.startswith(_GLIBC) or (lib / soname).exists():
                continue
            shutil.copy2(path.resolve(), lib / soname)


def _relocate(binary: Path, prefix: str, new: bytes = b"$ORIGIN/../lib") -> None:
    """Rewrite the absolute run path ``PREFIX/lib`` inside an ELF file to ``new`` (shorter,
    so it fits in place, padded with NULs)."""
    data = binary.read_bytes()
    old = (prefix.rstrip("/") + "/lib").encode()
    if old not in data or len(new) > len(old):
        return
    patched = data.replace(old + b"\0", new + b"\0" * (len(old) - len(new) + 1))
    if patched != data:
        mode = binary.stat().st_mode
        binary.write_bytes(patched)
        binary.chmod(mode)


def clear_cache() -> None:
    shutil.rmtree(paths.home() / "cache", ignore_errors=True)
