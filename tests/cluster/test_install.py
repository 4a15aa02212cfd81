"""Installing the runtime into a node's venv, offline (the suite runs with no route out).

Ray comes from the suite's wheelhouse (scripts/test.sh builds it before the run), as on a node
without internet; Styx itself from this source tree. The suite's private HOME has no pip config
of its own, so nothing else could be fetched.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from styx.cluster import install
from styx.cluster.runner import LocalRunner
from styx.errors import RemoteError

pytestmark = pytest.mark.slow


def test_install_into_fresh_venv_gives_a_working_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.ops.conftest import wheelhouse

    wheels = wheelhouse()
    if wheels is None:
        pytest.skip("no wheelhouse with Ray (scripts/test.sh builds .wheelhouse)")
    monkeypatch.setenv("STYX_WHEELHOUSE", wheels)
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
