"""scripts/postgres.sh: idempotent start/stop of a unix-socket-only test server."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from .conftest import POSTGRES_SH, pg_binaries_present

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not pg_binaries_present(), reason="PostgreSQL binaries not found"),
]


def _sh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(POSTGRES_SH), *args], capture_output=True, text=True, check=False, timeout=120
    )


def _query(url: str) -> object:
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SHOW listen_addresses").scalar()
    finally:
        engine.dispose()


def test_start_stop_are_idempotent() -> None:
    folder = tempfile.mkdtemp(prefix="styx-pg-")
    try:
        first = _sh("start", folder)
        assert first.returncode == 0, first.stderr
        url = first.stdout.strip().splitlines()[-1]
        assert url == f"postgresql+psycopg://postgres@/styx_test?host={folder}"
        assert _query(url) == ""  # no TCP listener, only the socket in the folder
        again = _sh("start", folder)  # already running: same URL, nothing breaks
        assert again.returncode == 0 and again.stdout.strip().splitlines()[-1] == url
        assert _sh("stop", folder).returncode == 0
        assert _sh("stop", folder).returncode == 0  # already stopped
        restarted = _sh("start", folder)  # data kept, server back
        assert restarted.returncode == 0, restarted.stderr
        assert _query(url) == ""
        assert _sh("url", folder).stdout.strip() == url
    finally:
        _sh("stop", folder)
        shutil.rmtree(folder, ignore_errors=True)


def test_bad_usage_is_reported() -> None:
    assert _sh("start").returncode == 2
    folder = tempfile.mkdtemp(prefix="styx-pg-")
    shutil.rmtree(folder)
    assert _sh("frobnicate", folder).returncode == 2
    assert not os.path.exists(folder)  # nothing created on bad usage
