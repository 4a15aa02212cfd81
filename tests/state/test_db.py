"""Opening the database: URL selection, schema creation and migrations, settings, errors."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.pool import NullPool

import styx.state
from styx.errors import StateError
from styx.state import db as dbmod
from styx.state import migrate
from styx.state.db import SCHEMA_REVISION, Database, get_db, resolve_url
from styx.state.models import Base

from .helpers import run_in_processes

TABLES = {
    "meta",
    "clusters",
    "cluster_events",
    "cluster_jobs",
    "managed_jobs",
    "status_transitions",
    "cluster_usage",
    "dag_runs",
    "locks",
    "storage",
    "services",
    "service_replicas",
}


def test_upgrade_from_empty_creates_every_table(db: Database) -> None:
    assert db.schema_revision() == SCHEMA_REVISION
    with db.engine().connect() as conn:
        names = set(sa.inspect(conn).get_table_names())
    assert names >= TABLES
    assert "alembic_version" in names


def test_reopen_is_idempotent(db_url: str) -> None:
    first = Database.open(db_url)
    styx.state.upsert_cluster(first, "c", provider="local", handle={})
    first.close()
    again = Database.open(db_url)
    assert again.schema_revision() == SCHEMA_REVISION
    assert [c.name for c in styx.state.list_clusters(again)] == ["c"]
    assert migrate.upgrade(again) == SCHEMA_REVISION  # nothing left to do
    again.close()


def test_migrations_match_the_models(db: Database) -> None:
    with db.engine().connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diffs == []


def test_schema_revision_constant_is_the_migrations_head() -> None:
    assert migrate.head_revision() == SCHEMA_REVISION
    script = ScriptDirectory.from_config(migrate.alembic_config())
    for rev in script.walk_revisions():
        # Numeric ids let an old Styx recognise a database written by a newer one.
        assert rev.revision.isdigit() and len(rev.revision) == 4


def test_newer_schema_is_refused(db: Database, db_url: str) -> None:
    db.write(lambda s: s.execute(sa.text("UPDATE meta SET value = '9999'")))
    db.close()
    with pytest.raises(StateError, match="newer than this Styx"):
        Database(db_url).ensure_schema()


def _open_and_count(url: str) -> int:
    db = Database.open(url)
    styx.state.upsert_cluster(db, f"c{os.getpid()}", provider="local", handle={})
    return len(styx.state.list_clusters(db))


def test_concurrent_first_open_migrates_once(db_url: str) -> None:
    results = run_in_processes(_open_and_count, [(db_url,)] * 8)
    assert len(results) == 8
    db = Database.open(db_url)
    assert len(styx.state.list_clusters(db)) == 8
    with db.engine().connect() as conn:
        versions = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    assert versions == [(SCHEMA_REVISION,)]
    db.close()


def test_settings_round_trip(db: Database) -> None:
    assert db.get_setting("color") is None
    db.set_setting("color", "blue")
    db.set_setting("color", "green")
    assert db.get_setting("color") == "green"
    with pytest.raises(ValueError):
        db.set_setting("schema_revision", "1")


def test_forked_child_uses_its_own_connections(db: Database) -> None:
    styx.state.upsert_cluster(db, "parent", provider="local", handle={})

    def child() -> list[str]:
        styx.state.upsert_cluster(db, "child", provider="local", handle={})
        return [c.name for c in styx.state.list_clusters(db)]

    assert run_in_processes(child, [()]) == [["child", "parent"]]
    assert [c.name for c in styx.state.list_clusters(db)] == ["child", "parent"]


# -- selection ---------------------------------------------------------------------------------


def test_a_second_database_object_keeps_the_first_ones_locks(tmp_path: Path) -> None:
    """Two Database objects on one SQLite file in one process (a controller and the user
    operations it runs): opening the second must not drop the first one's POSIX locks, else
    another process closing its last connection deletes the WAL the first still writes to,
    and what it writes is lost to everyone else."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    first = Database(url)
    first.set_setting("who", "first")
    second = Database(url)
    second.set_setting("who", "second")
    first.set_setting("who", "first again")  # both hold pooled connections now
    code = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('select count(*) from meta').fetchall(); c.close()"
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "state.db")], check=True)
    first.set_setting("who", "after")
    other = sqlite3.connect(tmp_path / "state.db")
    [(value,)] = other.execute("SELECT value FROM meta WHERE key = 'who'").fetchall()
    other.close()
    assert value == "after"
    first.close()
    second.close()


def test_url_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STYX_HOME", str(tmp_path))
    monkeypatch.delenv("STYX_DB_URL", raising=False)
    assert resolve_url() == f"sqlite:///{tmp_path}/state.db"
    assert resolve_url("sqlite:////x/y.db") == "sqlite:////x/y.db"
    assert resolve_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert resolve_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    monkeypatch.setenv("STYX_DB_URL", "postgresql://env@h/d")
    assert resolve_url("sqlite:////x/y.db") == "postgresql+psycopg://env@h/d"


def test_get_db_is_cached_per_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STYX_HOME", str(tmp_path))
    monkeypatch.delenv("STYX_DB_URL", raising=False)
    dbmod.clear_cache()
    assert get_db() is get_db()
    assert get_db() is not get_db(f"sqlite:///{tmp_path}/other.db")
    dbmod.clear_cache()


def test_sqlite_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    db = Database.open(f"sqlite:///{tmp_path}/s.db")
    with db.engine().connect() as conn:
        pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("synchronous") == 1  # NORMAL
        assert pragma("foreign_keys") == 1
        assert pragma("busy_timeout") == 30000
    db.close()


def test_sqlite_write_transactions_take_the_write_lock_first(tmp_path: Path) -> None:
    """A write transaction holds the lock before it writes (BEGIN IMMEDIATE): another writer
    finds the database locked even while we only read."""
    path = tmp_path / "s.db"
    db = Database.open(f"sqlite:///{path}")
    seen: list[str] = []

    def txn(session: object) -> None:
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            seen.append("got the lock")
        except sqlite3.OperationalError as exc:
            seen.append(str(exc))
        finally:
            other.close()

    db.write(txn)
    db.read(txn)
    assert seen == ["database is locked", "got the lock"]
    db.close()


def test_contention_is_retried_not_reported(db: Database) -> None:
    import psycopg.errors

    calls: list[int] = []
    raw: BaseException = (
        sqlite3.OperationalError("database is locked")
        if db.backend == "sqlite"
        else psycopg.errors.SerializationFailure("could not serialize access")
    )

    def flaky(session: object) -> str:
        calls.append(1)
        if len(calls) < 3:
            raise sa.exc.OperationalError("UPDATE ...", {}, raw)
        return "done"

    assert db.write(flaky) == "done"
    assert len(calls) == 3 and db.retries == 2


def test_contention_past_the_deadline_is_a_state_error(db_url: str) -> None:
    db = Database(db_url, retry_seconds=0.05)

    def always_locked(session: object) -> None:
        raise sa.exc.OperationalError("x", {}, sqlite3.OperationalError("database is locked"))

    with pytest.raises(StateError, match="stayed locked"):
        db.write(always_locked)
    db.close()


def test_concurrent_sqlite_writers_wait_instead_of_failing(tmp_path: Path) -> None:
    db = Database.open(f"sqlite:///{tmp_path}/s.db")
    styx.state.upsert_cluster(db, "c", provider="local", handle={}, metadata={"n": 0})
    failures: list[BaseException] = []

    def bump() -> None:
        try:
            for _ in range(20):
                current = styx.state.require_cluster(db, "c").metadata["n"]
                styx.state.update_cluster(db, "c", metadata={"n": current + 1})
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    db.close()


# -- errors ------------------------------------------------------------------------------------


def _assert_clean(err: StateError, *, chained: bool = True) -> None:
    """What the CLI shows: a code, one line saying what happened, a hint; no SQL, no trace."""
    assert err.code == "state-error" and err.exit_code == 8
    assert "\n" not in err.message
    assert "Traceback" not in err.message and "Background on this error" not in err.message
    assert err.hint
    if chained:
        assert err.__cause__ is not None  # the foreign error is kept for --debug


@pytest.mark.parametrize(
    "url",
    ["not a url", "nosuch://x/y", "postgresql+nosuchdriver://u@h/d", "mysql://u@h/d"],
)
def test_bad_url_is_a_state_error(url: str) -> None:
    with pytest.raises(StateError) as info:
        Database.open(url)
    _assert_clean(info.value, chained=False)


def test_unwritable_sqlite_folder_is_a_state_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StateError, match="Cannot open") as info:
        Database.open(f"sqlite:///{blocker}/state.db")
    _assert_clean(info.value)


def test_unusable_styx_home_is_the_users_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from styx.errors import ConfigError

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.delenv("STYX_DB_URL", raising=False)
    for home, why in ((blocker / "home", "cannot be created"), (blocker, "is a file")):
        monkeypatch.setenv("STYX_HOME", str(home))
        with pytest.raises(ConfigError, match=why) as info:
            get_db()
        assert info.value.code == "styx-home-unusable" and info.value.exit_code == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file permissions")
def test_read_only_folder_is_a_state_error(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(StateError) as info:
            Database.open(f"sqlite:///{folder}/state.db")
        _assert_clean(info.value)
    finally:
        folder.chmod(0o700)


def test_corrupt_sqlite_file_is_a_state_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError, match="damaged or not a database") as info:
        Database.open(f"sqlite:///{path}")
    _assert_clean(info.value)


@pytest.mark.postgres
def test_postgres_server_down_is_a_state_error(tmp_path: Path) -> None:
    url = f"postgresql://postgres@/styx_test?host={tmp_path}&connect_timeout=2"
    with pytest.raises(StateError, match="Cannot connect") as info:
        Database.open(url)
    _assert_clean(info.value)


@pytest.mark.postgres
def test_postgres_missing_database_is_a_state_error(pg_url: str) -> None:
    url = pg_url.replace("/styx_test?", "/no_such_db?")
    with pytest.raises(StateError, match="does not exist") as info:
        Database.open(url)
    _assert_clean(info.value)


def test_password_is_never_shown() -> None:
    db = Database("postgresql://bob:s3cret@/nodb?host=/nonexistent&connect_timeout=1")
    assert "s3cret" not in repr(db)
    with pytest.raises(StateError) as info:
        db.ensure_schema()
    assert "s3cret" not in info.value.message


# -- cost --------------------------------------------------------------------------------------


def test_hot_path_imports_neither_sqlalchemy_nor_alembic(db: Database, db_url: str) -> None:
    """`styx status` on a current database: one cheap check, no Alembic (nor SQLAlchemy on
    SQLite, whose cluster reads use the sqlite3 fast path)."""
    styx.state.upsert_cluster(db, "c", provider="local", handle={"k": [1, 2]})
    code = (
        "import sys; from styx.state import get_db, list_clusters; "
        "rows = list_clusters(get_db()); "
        "print(len(rows), 'alembic' in sys.modules, 'sqlalchemy' in sys.modules)"
    )
    env = {**os.environ, "STYX_DB_URL": db_url}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[:2] == ["1", "False"]
    if db.backend == "sqlite":
        assert out[2] == "False"


def test_fast_path_matches_the_sqlalchemy_path(db: Database) -> None:
    from styx.state import clusters

    for i in range(5):
        styx.state.upsert_cluster(
            db,
            f"c{i}",
            provider="local",
            handle={"nodes": [{"ip": f"10.0.0.{i}"}], "ü": "ünïcode", "f": 0.1 * i},
            launched_resources={"cpus": i} if i % 2 else None,
            autostop={"idle_minutes": i, "down": bool(i % 2)},
            user_name="alice" if i < 3 else "bob",
            metadata={"nested": {"list": [None, True, 1.5]}},
        )
    fast = db.fast_reader()
    if db.backend != "sqlite":
        assert fast is None
        return
    assert fast is not None
    slow_db = Database(db.url)
    slow_db.fast_reader = lambda: None  # type: ignore[method-assign]
    assert clusters.list_clusters(slow_db) == fast.list_clusters()
    assert clusters.list_clusters(slow_db, user_name="bob") == fast.list_clusters(None, "bob")
    assert clusters.get_cluster(slow_db, "c3") == fast.get_cluster("c3")
    slow_db.close()


def test_public_names_resolve() -> None:
    for name in styx.state.__all__:
        assert getattr(styx.state, name) is not None
    with pytest.raises(AttributeError):
        _ = styx.state.no_such_name  # type: ignore[attr-defined]


def test_pg_fixture_is_isolated_per_test(db: Database) -> None:
    assert styx.state.list_clusters(db) == []


def test_engine_creation_is_lazy(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/lazy.db")
    assert not (tmp_path / "lazy.db").exists()
    db.ensure_schema()
    assert (tmp_path / "lazy.db").exists()
    db.close()


def test_admin_engine_sees_tables_in_the_test_schema_only(db: Database, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("PostgreSQL schemas only")
    eng = sa.create_engine(db.url, poolclass=NullPool)
    with eng.connect() as conn:
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
    eng.dispose()
    assert str(schema).startswith("t_")
