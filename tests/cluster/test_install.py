"""Installing the runtime into a node's venv, offline (the suite runs with no route out).

The venv sees the system site-packages, where Ray already is, and Styx is installed from this
source tree without build isolation, so nothing is downloaded: the same path a node built from
an image with Ray takes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from styx.cluster import install
from styx.cluster.runner import LocalRunner
from styx.errors import RemoteError

pytestmark = pytest.mark.slow


def test_install_into_fresh_venv_gives_a_working_runtime(tmp_path: Path) -> None:
    runner = LocalRunner("node")
    venv = str(tmp_path / "runtime")
    assert not install.has_runtime(runner, install.runtime_python(venv))
    python = install.install(runner, sys.executable, venv, install.RuntimeSource.detect())
    assert python == install.runtime_python(venv)
    assert install.has_runtime(runner, python)
    # A second install is a no-op that still succeeds (later launches reuse the runtime).
    assert install.install(runner, sys.executable, venv, install.RuntimeSource.detect()) == python


def test_missing_wheelhouse_fails_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A released Styx version that no wheelhouse here holds: pip must fail, and say so.
    monkeypatch.setattr(install, "__version__", "99.0.0")
    source = install.RuntimeSource(source_dir=None, wheelhouse=str(tmp_path / "no-wheels"))
    with pytest.raises(RemoteError) as err:
        install.install(LocalRunner("node"), sys.executable, str(tmp_path / "rt"), source)
    assert "wheelhouse" in err.value.message and "STYX_WHEELHOUSE" in err.value.hint


def test_base_python_missing_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RemoteError) as err:
        install.install(
            LocalRunner("node"),
            "/nonexistent/python3",
            str(tmp_path / "rt"),
            install.RuntimeSource.detect(),
        )
    assert "runtime venv" in err.value.message
