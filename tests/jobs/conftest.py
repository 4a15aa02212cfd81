"""A fresh SQLite state database per test, under a temporary STYX_HOME."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from styx.state import db as dbmod
from styx.state.db import Database


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.delenv("STYX_DB_URL", raising=False)
    monkeypatch.setenv("STYX_HOME", str(tmp_path / "styx-home"))
    dbmod.clear_cache()
    database = Database.open()
    try:
        yield database
    finally:
        database.close()
        dbmod.clear_cache()
