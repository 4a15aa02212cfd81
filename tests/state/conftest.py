"""Fixtures running every state test on SQLite and on PostgreSQL.

PostgreSQL comes from ``STYX_TEST_PG_URL`` when set; otherwise a throwaway server is started
once per session with ``scripts/postgres.sh`` in a temporary folder (the test is skipped, with
the reason, only when no PostgreSQL binaries are installed). Each test gets its own schema on
PostgreSQL (through ``search_path``) and its own ``STYX_HOME`` on SQLite.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from styx.state import db as dbmod
from styx.state.db import Database, normalize_url

REPO = Path(__file__).resolve().parents[2]
POSTGRES_SH = REPO / "scripts" / "postgres.sh"


def pg_binaries_present() -> bool:
    """True when scripts/postgres.sh can find initdb."""
    return bool(
        os.environ.get("PG_BIN")
        or glob.glob("/usr/lib/postgresql/*/bin/initdb")
        or shutil.which("initdb")
    )


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """The URL of a PostgreSQL database the tests may create schemas in."""
    url = os.environ.get("STYX_TEST_PG_URL")
    if url:
        yield normalize_url(url)
        return
    if not pg_binaries_present():
        pytest.skip(
            "PostgreSQL binaries not found (no /usr/lib/postgresql/*/bin/initdb or initdb on "
            "PATH); install the postgresql package or set STYX_TEST_PG_URL"
        )
    folder = tempfile.mkdtemp(prefix="styx-pg-")  # under /tmp: the postgres user must reach it
    started = subprocess.run(
        [str(POSTGRES_SH), "start", folder], capture_output=True, text=True, check=False
    )
    if started.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"scripts/postgres.sh start failed:\n{started.stderr}", pytrace=False)
    os.environ["STYX_TEST_PG_DIR"] = folder  # lets the script test reuse this server
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([str(POSTGRES_SH), "stop", folder], capture_output=True, check=False)
        os.environ.pop("STYX_TEST_PG_DIR", None)
        shutil.rmtree(folder, ignore_errors=True)


def with_search_path(url: str, schema: str) -> str:
    """``url`` whose connections use ``schema`` first (a libpq ``options`` parameter)."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture
def pg_schema_url(pg_url: str) -> Iterator[str]:
    """A URL of a fresh, empty schema, dropped after the test."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(pg_url, poolclass=NullPool)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield with_search_path(pg_url, schema)
    finally:
        dbmod.clear_cache()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """The backend under test."""
    return str(request.param)


@pytest.fixture
def db_url(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A URL of an empty database of the backend under test (nothing created yet)."""
    monkeypatch.delenv("STYX_DB_URL", raising=False)
    monkeypatch.setenv("STYX_HOME", str(tmp_path / "styx-home"))
    dbmod.clear_cache()
    if backend == "sqlite":
        yield dbmod.resolve_url()
    else:
        yield request.getfixturevalue("pg_schema_url")
    dbmod.clear_cache()


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """An opened (migrated) database of the backend under test."""
    database = Database.open(db_url)
    try:
        yield database
    finally:
        database.close()
