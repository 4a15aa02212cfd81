"""Install hints name Styx's own interpreter: a bare `pip` may install somewhere else."""

from __future__ import annotations

import shlex
import sys

import pytest

from styx.paths import pip_install


def test_the_aws_check_names_styx_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    from styx.providers.aws.info import check

    monkeypatch.setitem(sys.modules, "boto3", None)  # `import boto3` raises ImportError
    status = check()
    assert not status.enabled
    assert f"{shlex.quote(sys.executable)} -m pip install boto3" in status.reason


def test_pip_install_quotes_what_needs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "/opt/my env/bin/python")
    assert (
        pip_install("psycopg[binary]")
        == "'/opt/my env/bin/python' -m pip install 'psycopg[binary]'"
    )
