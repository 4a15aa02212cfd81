"""Styx's own runtime Python for images without one: the archive built from this interpreter.

An image without Python rarely has OpenSSL, libffi or SQLite either (Debian minbase has none
of them), and Ray's agents import ssl: the archive carries what its extension modules link to,
except glibc, and their run paths find it wherever it is unpacked. That it then runs Ray in such
an image is tests/kubeworld's test_an_image_without_python_still_runs_the_task.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest

from styx.cluster import portable_python


def test_the_archive_carries_the_libraries_its_modules_need(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = sys.base_prefix
    if prefix in ("/usr", "/usr/local"):
        pytest.skip("this interpreter is the system's, which Styx does not copy")
    monkeypatch.setenv("STYX_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("STYX_RUNTIME_PYTHON", raising=False)
    archive = portable_python.archive()
    assert archive.name.endswith(f"-{portable_python._LAYOUT}.tar.gz")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    libs = {Path(n).name for n in names if n.startswith("python/lib/") and n.count("/") == 2}
    dynload = Path(sysconfig.get_paths()["platstdlib"]) / "lib-dynload"
    ssl_module = next(dynload.glob("_ssl*.so"), None)
    if ssl_module is not None:
        needed = subprocess.run(["ldd", str(ssl_module)], capture_output=True, text=True).stdout
        if "libssl.so.3 => /" in needed and prefix not in needed.split("libssl.so.3 => ")[1]:
            assert "libssl.so.3" in libs and "libcrypto.so.3" in libs, sorted(libs)
    assert not [n for n in libs if n.startswith(("libc.so", "libm.so", "ld-linux"))]  # glibc
    assert not any("site-packages/" in n for n in names)
