"""Sorting database failures: which ones to retry, and how to tell the user about the rest.

Transient contention (SQLite's "database is locked", PostgreSQL serialization failures and
deadlocks) is retried by :class:`styx.state.db.Database` and never reaches a caller.
Everything else becomes a :class:`styx.errors.StateError` with one sentence of what happened and
one of what to do; the original exception stays chained for ``--debug``.
"""

from __future__ import annotations

import random
import re

from styx.errors import StateError

# SQLite primary result codes (https://sqlite.org/rescode.html).
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_READONLY = 8
_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
_SQLITE_NOTADB = 26

_SQLITE_CONTENTION_TEXT = ("database is locked", "database table is locked", "database is busy")

# PostgreSQL SQLSTATEs worth retrying: serialization_failure, deadlock_detected,
# lock_not_available, and "cannot connect now" while the server is still starting.
_PG_RETRY_STATES = frozenset({"40001", "40P01", "55P03", "57P03"})


def _orig(exc: BaseException) -> BaseException:
    """The DBAPI exception under a SQLAlchemy wrapper (or the exception itself)."""
    inner = getattr(exc, "orig", None)
    return inner if isinstance(inner, BaseException) else exc


def _sqlite_code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _sqlstate(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None)
    return state if isinstance(state, str) else None


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text, without SQLAlchemy's statement dump."""
    text = str(_orig(exc)).strip().splitlines()
    return text[0].strip() if text else type(exc).__name__


def is_contention(exc: BaseException) -> bool:
    """True for lock contention that succeeds when the transaction is run again."""
    orig = _orig(exc)
    code = _sqlite_code(orig)
    if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return True
    if _sqlstate(orig) in _PG_RETRY_STATES:
        return True
    text = str(orig).lower()
    return any(t in text for t in _SQLITE_CONTENTION_TEXT)


def backoff_delay(attempt: int) -> float:
    """Seconds to sleep before retry ``attempt`` (0-based): exponential, capped, jittered.

    Full jitter spreads out writers that failed together, so they do not collide again.
    """
    return random.uniform(0.0, min(0.5, 0.005 * (2**attempt))) + 0.001


def is_disconnect(exc: BaseException) -> bool:
    """True when a pooled connection died under us (worth one fresh try)."""
    return bool(getattr(exc, "connection_invalidated", False))


def is_missing_table(exc: BaseException) -> bool:
    """True when a query failed because a table does not exist (a fresh database)."""
    orig = _orig(exc)
    return _sqlstate(orig) == "42P01" or "no such table" in str(orig).lower()


def redact(url: str) -> str:
    """The URL with any password replaced by ``***``, safe to print."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def translate(exc: BaseException, where: str) -> StateError:
    """A StateError for a non-transient failure of the database at ``where`` (redacted)."""
    orig = _orig(exc)
    detail = first_line(exc)
    code = _sqlite_code(orig)
    state = _sqlstate(orig)
    text = detail.lower()
    if code == _SQLITE_CANTOPEN or "unable to open database file" in text:
        return StateError(
            f"Cannot open the state database {where}: {detail}.",
            "Make sure its folder exists and is writable, or point STYX_HOME or STYX_DB_URL "
            "somewhere writable.",
        )
    if code == _SQLITE_READONLY or "readonly database" in text:
        return StateError(
            f"The state database {where} is read-only: {detail}.",
            "Make the file and its folder writable by this user, or set STYX_HOME elsewhere.",
        )
    if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return StateError(
            f"The state database {where} is damaged or not a database: {detail}.",
            "Move the file aside so that Styx starts anew, then check providers for leftovers.",
        )
    if code == _SQLITE_FULL:
        return StateError(
            f"The disk holding the state database {where} is full.",
            "Free some space and run the command again.",
        )
    if state is not None and state.startswith("28"):
        return StateError(
            f"PostgreSQL at {where} refused the credentials: {detail}.",
            "Check the user and password in STYX_DB_URL or the `db:` config key.",
        )
    if state == "3D000":
        return StateError(
            f"The PostgreSQL database in {where} does not exist: {detail}.",
            "Create it (e.g. `createdb NAME`) or fix the database name in the URL.",
        )
    if _is_connect_failure(exc, text):
        return StateError(
            f"Cannot connect to the state database {where}: {detail}.",
            "Check that the server is running and reachable, and that STYX_DB_URL is right.",
        )
    return StateError(f"The state database {where} failed: {detail}.")


def _is_connect_failure(exc: BaseException, text: str) -> bool:
    name = type(_orig(exc)).__name__
    if name in ("OperationalError", "ConnectionTimeout") and (
        "connect" in text or "server" in text or "socket" in text or "timeout" in text
    ):
        return True
    return is_disconnect(exc)
