"""Building SQLAlchemy engines for SQLite and PostgreSQL, with the settings Styx relies on."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from styx.errors import StateError

_URL_HINT = "Use sqlite:///PATH or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE."


def create(url: str, where: str, busy_timeout_s: float) -> Engine:
    """An engine for ``url``; bad URLs and missing drivers become StateError."""
    try:
        parsed = sa.make_url(url)
    except ArgumentError as exc:
        raise StateError(f"The database URL {where!r} is not valid.", _URL_HINT) from exc
    backend = parsed.get_backend_name()
    try:
        if backend == "sqlite":
            return _sqlite(parsed, busy_timeout_s)
        if backend == "postgresql":
            return _postgresql(parsed)
    except NoSuchModuleError as exc:
        raise StateError(f"The database URL {where!r} names an unknown driver.", _URL_HINT) from exc
    except ImportError as exc:
        from styx.paths import pip_install

        raise StateError(
            f"The driver for {where!r} is not installed ({exc.name or exc}).",
            "Install it, or use postgresql:// with psycopg 3 "
            f"(`{pip_install('psycopg[binary]')}`).",
        ) from exc
    raise StateError(
        f"The database URL {where!r} names {backend!r}; Styx supports SQLite and PostgreSQL.",
        _URL_HINT,
    )


def _sqlite(url: sa.URL, busy_timeout_s: float) -> Engine:
    engine = sa.create_engine(url, connect_args={"timeout": busy_timeout_s})
    busy_ms = int(busy_timeout_s * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so that BEGIN is ours.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front: a deferred transaction that reads and then
        # writes can fail at once with SQLITE_BUSY (no busy wait) when another writer is
        # ahead of it, while BEGIN IMMEDIATE waits its turn for up to busy_timeout.
        write = conn.get_execution_options().get("styx_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _postgresql(url: sa.URL) -> Engine:
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = 10
    if "application_name" not in url.query:
        connect_args["application_name"] = "styx"
    return sa.create_engine(
        url,
        connect_args=connect_args,
        # Long-lived controllers outlive server restarts; check a pooled connection first.
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
    )
