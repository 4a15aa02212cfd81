"""The state database: which one, how to open it, and how transactions run.

Selection, first match wins: the ``STYX_DB_URL`` environment variable, then the ``db:`` value of
the config (passed in as ``db_url``), then SQLite at :func:`styx.paths.state_db`.
``postgresql://`` and ``postgres://`` URLs are run with the psycopg 3 driver.

Cost matters because every CLI command opens the database: this module imports no SQLAlchemy
until a transaction needs it, the schema revision is checked with one query against the ``meta``
table, and Alembic is imported only when that revision is absent or old. On SQLite, reads of
clusters skip SQLAlchemy altogether (see :mod:`styx.state._fast`).

SQLite runs in WAL mode with ``synchronous=NORMAL``, a 30 s busy timeout and foreign keys on;
write transactions start with ``BEGIN IMMEDIATE`` so that concurrent writers queue for the write
lock instead of failing when a read lock cannot be upgraded. Contention that still surfaces
(``database is locked``, PostgreSQL serialization failures and deadlocks) is retried here with
jittered exponential backoff; any other failure becomes a :class:`~styx.errors.StateError`.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from styx import paths
from styx.errors import StateError, StyxError
from styx.state import _errors

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.orm import Session

    from styx.state._fast import FastReader

#: The Alembic revision this Styx writes; bump it with every new file in migrations/versions.
SCHEMA_REVISION = "0006"
ENV_VAR = "STYX_DB_URL"
BUSY_TIMEOUT_S = 30.0
#: How long contention is retried before it is reported as an error.
RETRY_SECONDS = 120.0

T = TypeVar("T")


def normalize_url(url: str) -> str:
    """``url`` with plain PostgreSQL schemes rewritten to the psycopg 3 driver."""
    url = url.strip()
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def resolve_url(db_url: str | None = None) -> str:
    """The database URL to use: ``$STYX_DB_URL``, else ``db_url`` (config), else SQLite."""
    raw = os.environ.get(ENV_VAR) or db_url
    if raw and raw.strip():
        return normalize_url(raw)
    try:
        path = paths.state_db()
    except OSError as exc:
        raise StateError(
            f"Cannot create the Styx home folder for the state database: {exc}.",
            "Set STYX_HOME to a writable folder, or STYX_DB_URL to another database.",
        ) from exc
    return f"sqlite:///{path}"


def sqlite_path(url: str) -> str | None:
    """The file of a plain SQLite URL, or None (not SQLite, in memory, or with options)."""
    for prefix in ("sqlite:///", "sqlite+pysqlite:///"):
        if url.startswith(prefix):
            path = url[len(prefix) :]
            if not path or path == ":memory:" or "?" in path:
                return None
            return path
    return None


class Database:
    """One state database. Cheap to construct: the engine is created on first use.

    Use :meth:`open` (or :func:`get_db` for a per-process shared one) rather than the
    constructor, which takes the URL verbatim. Safe to use from threads; after ``fork`` the
    child transparently builds its own engine.
    """

    def __init__(
        self,
        url: str,
        *,
        retry_seconds: float = RETRY_SECONDS,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
    ) -> None:
        self.url = normalize_url(url)
        self.retry_seconds = retry_seconds
        self.busy_timeout_s = busy_timeout_s  # SQLite's own wait for a lock, before we retry
        path = sqlite_path(self.url)
        self.backend = self.url.split(":", 1)[0].split("+", 1)[0]
        self.where = path if path is not None else _errors.redact(self.url)
        self._pid = os.getpid()
        self._engine: Engine | None = None
        self._write_engine: Engine | None = None
        self._schema_ok = False
        self._fast: FastReader | None = None
        #: Transactions re-run after contention, for benchmarks and tests to report.
        self.retries = 0
        self._lock = threading.Lock()  # guards lazy creation from several threads

    @classmethod
    def open(cls, db_url: str | None = None) -> Database:
        """Open the database selected by :func:`resolve_url`, creating or upgrading its schema."""
        db = cls(resolve_url(db_url))
        db.ensure_schema()
        return db

    def __repr__(self) -> str:
        return f"Database({self.where!r})"

    # -- engines ---------------------------------------------------------------------------

    def _check_pid(self) -> None:
        if self._pid == os.getpid():
            return
        # A forked child must not share the parent's connections.
        if self._engine is not None:
            self._engine.dispose(close=False)
        self._engine = self._write_engine = None
        self._fast = None
        self._schema_ok = False
        self._lock = threading.Lock()  # another thread may have held it at the fork
        self._pid = os.getpid()

    def engine(self, *, write: bool = False) -> Engine:
        """The SQLAlchemy engine; with ``write=True``, its transactions take the write lock."""
        self._check_pid()
        if self._engine is None:
            from styx.state import _engine

            with self._lock:
                if self._engine is None:
                    engine = _engine.create(self.url, self.where, self.busy_timeout_s)
                    self._write_engine = engine.execution_options(styx_write=True)
                    self._engine = engine
        if write:
            assert self._write_engine is not None
            return self._write_engine
        return self._engine

    def fast_reader(self) -> FastReader | None:
        """A plain-sqlite3 reader for hot reads, or None (PostgreSQL, or schema not current)."""
        self._check_pid()
        if self._fast is None:
            path = sqlite_path(self.url)
            if path is None:
                return None
            from styx.state._fast import FastReader

            with self._lock:
                if self._fast is None:
                    self._fast = FastReader.open(path, SCHEMA_REVISION, self)
        return self._fast

    def close(self) -> None:
        """Close pooled connections. The object stays usable (it reconnects on demand)."""
        if self._fast is not None:
            self._fast.close()
            self._fast = None
        if self._engine is not None and self._pid == os.getpid():
            self._engine.dispose()
        self._engine = self._write_engine = None

    # -- transactions ----------------------------------------------------------------------

    def read(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn`` in a read transaction and return its result; retried on contention."""
        self.ensure_schema()
        return self.run(fn, write=False)

    def write(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn`` in a write transaction, committed when it returns; retried on contention.

        ``fn`` may run more than once, so it must have no effects outside the session.
        """
        self.ensure_schema()
        return self.run(fn, write=True)

    def run(self, fn: Callable[[Session], T], *, write: bool) -> T:
        """Like :meth:`read`/:meth:`write` but without the schema check (for migrations)."""
        from sqlalchemy.exc import DBAPIError, SQLAlchemyError
        from sqlalchemy.orm import Session

        engine = self.engine(write=write)
        deadline = time.monotonic() + self.retry_seconds
        attempt = 0
        disconnects = 0
        while True:
            try:
                with Session(engine, expire_on_commit=False) as session, session.begin():
                    session.connection()  # BEGIN now: on SQLite, writers take the lock here
                    return fn(session)
            except DBAPIError as exc:
                if _errors.is_contention(exc):
                    if time.monotonic() >= deadline:
                        raise self._busy_error() from exc
                    time.sleep(_errors.backoff_delay(attempt))
                    attempt += 1
                    self.retries += 1
                    continue
                if _errors.is_disconnect(exc) and disconnects < 2:
                    disconnects += 1
                    continue
                raise _errors.translate(exc, self.where) from exc
            except StyxError:
                raise
            except SQLAlchemyError as exc:
                raise _errors.translate(exc, self.where) from exc

    def _busy_error(self) -> StateError:
        return StateError(
            f"The state database {self.where} stayed locked for {self.retry_seconds:.0f} s.",
            "Another process holds it for too long; find it with `fuser` or retry later.",
        )

    # -- schema ----------------------------------------------------------------------------

    def schema_revision(self) -> str | None:
        """The schema revision recorded in the database, or None for an empty database."""
        from sqlalchemy.exc import DBAPIError

        try:
            return self.run(_read_revision, write=False)
        except StateError as exc:
            cause = exc.__cause__
            if isinstance(cause, DBAPIError) and _errors.is_missing_table(cause):
                return None
            raise

    def ensure_schema(self) -> None:
        """Create or upgrade the schema unless it is already current (one query when it is)."""
        self._check_pid()
        if self._schema_ok:
            return
        path = sqlite_path(self.url)
        if path is not None:
            _make_private(path)
        fast = self.fast_reader()  # on SQLite, this already checked the revision
        revision = SCHEMA_REVISION if fast is not None else self.schema_revision()
        if revision != SCHEMA_REVISION:
            check_not_newer(revision, self.where)
            from styx.state import migrate

            migrate.upgrade(self)
        self._schema_ok = True

    # -- settings --------------------------------------------------------------------------

    def get_setting(self, key: str) -> str | None:
        """A small setting from the ``meta`` table, or None."""
        from styx.state.models import Meta

        return self.read(lambda s: _scalar(s.get(Meta, key)))

    def set_setting(self, key: str, value: str) -> None:
        """Store a small setting in the ``meta`` table (``schema_revision`` is reserved)."""
        if key == "schema_revision":
            raise ValueError("schema_revision is managed by migrations")
        from styx.state import _sql
        from styx.state.models import Meta

        self.write(lambda s: _sql.upsert(s, Meta, {"key": key, "value": value}, ["key"]))


def _make_private(path: str) -> None:
    """The SQLite file (and its WAL and shared-memory files) readable by this user only: it
    holds the clusters' handles and history. Created 0600 when missing; best effort on a file
    this user does not own."""
    if path == ":memory:":
        return
    # Only create it: opening and closing a file this process has open through SQLite would
    # drop every POSIX lock SQLite holds on it here (locks belong to the process, and close
    # releases them all). Another process would then take itself for the last one, delete
    # the WAL, and this process would go on writing into a deleted file nobody else reads.
    if not os.path.exists(path):
        with contextlib.suppress(OSError):
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    for name in (path, f"{path}-wal", f"{path}-shm"):
        with contextlib.suppress(OSError):
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, 0o600)


def _scalar(row: Any) -> str | None:
    return None if row is None else str(row.value)


def _read_revision(session: Session) -> str | None:
    from sqlalchemy import text

    value = session.execute(
        text("SELECT value FROM meta WHERE key = 'schema_revision'")
    ).scalar_one_or_none()
    return None if value is None else str(value)


def read_revision_on(conn: Connection) -> str | None:
    """The recorded revision, read on ``conn`` (inside a migration's transaction)."""
    from sqlalchemy import inspect, text

    if not inspect(conn).has_table("meta"):
        return None
    value = conn.execute(
        text("SELECT value FROM meta WHERE key = 'schema_revision'")
    ).scalar_one_or_none()
    return None if value is None else str(value)


def check_not_newer(revision: str | None, where: str) -> None:
    """Refuse a database written by a newer Styx (its revision is past ours)."""
    if revision is not None and (not revision.isdigit() or int(revision) > int(SCHEMA_REVISION)):
        raise StateError(
            f"The state database {where} has schema revision {revision}, newer than this "
            f"Styx knows ({SCHEMA_REVISION}).",
            "Upgrade Styx, or point STYX_DB_URL at another database.",
        )


_CACHE: dict[tuple[int, str], Database] = {}


def get_db(db_url: str | None = None) -> Database:
    """The process's shared :class:`Database` for the selected URL (see :func:`resolve_url`).

    The schema is checked on the first transaction, not here, so this is free to call.
    """
    url = resolve_url(db_url)
    key = (os.getpid(), url)
    db = _CACHE.get(key)
    if db is None:
        db = _CACHE[key] = Database(url)
    return db


def clear_cache() -> None:
    """Forget (and close) the shared databases; for tests that change ``STYX_HOME``."""
    for (pid, _), db in list(_CACHE.items()):
        if pid == os.getpid():
            db.close()
    _CACHE.clear()
