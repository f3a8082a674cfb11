"""Run SQL on a Django connection: composed statements in, plain values out."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import psycopg
from django.db import DatabaseError, InterfaceError, OperationalError, connections, transaction
from psycopg import sql

from ..core.exceptions import LockTimeout, ShardError

__all__ = [
    "Cursor",
    "Params",
    "Query",
    "cursor",
    "execute",
    "atomic",
    "fetch_column",
    "fetch_dicts",
    "fetch_rows",
    "fetch_value",
    "is_missing_table",
    "is_connection_error",
    "is_statement_timeout",
    "lock_timeout_errors",
    "set_lock_timeout",
    "set_statement_timeout",
    "snapshot",
    "sleep",
]

Query = str | sql.Composable
Params = Sequence[Any] | None


class Cursor(Protocol):
    """The part of a DB-API cursor the app uses (Django's ``CursorWrapper`` over psycopg).

    ``fetchone()`` is a row tuple, or None when there is none, and ``description`` is None
    after a statement that returns no rows; both are ``Any`` because callers that know a
    row (or columns) come back use them directly.
    """

    @property
    def rowcount(self) -> int: ...
    @property
    def description(self) -> Any: ...
    @property
    def connection(self) -> Any: ...
    def execute(self, query: str, params: Params = None, /) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[tuple[Any, ...]]: ...


def execute(cur: Cursor, query: Query, params: Params = None) -> None:
    """Execute on a Django cursor; a composed query is rendered on its connection."""
    text = query if isinstance(query, str) else query.as_string(cur.connection)
    cur.execute(text, params)


@contextmanager
def cursor(using: str) -> Iterator[Cursor]:
    with connections[using].cursor() as cur:
        yield cur


def fetch_rows(using: str, query: Query, params: Params = None) -> list[tuple[Any, ...]]:
    # The hot path of every service read: no generator-based context manager here.
    with connections[using].cursor() as cur:
        text = query if isinstance(query, str) else query.as_string(cur.connection)
        cur.execute(text, params)
        rows: list[tuple[Any, ...]] = cur.fetchall()
        return rows


def fetch_dicts(using: str, query: Query, params: Params = None) -> list[dict[str, Any]]:
    """Rows as column name -> value."""
    with cursor(using) as cur:
        execute(cur, query, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def fetch_column(using: str, query: Query, params: Params = None) -> list[Any]:
    return [row[0] for row in fetch_rows(using, query, params)]


def fetch_value(using: str, query: Query, params: Params = None) -> Any:
    """First column of the first row; None when there is no row."""
    rows = fetch_rows(using, query, params)
    return rows[0][0] if rows else None


def is_missing_table(error: BaseException) -> bool:
    """Whether a database error is PostgreSQL's "relation does not exist"."""
    return isinstance(error.__cause__, psycopg.errors.UndefinedTable)


def set_lock_timeout(cur: Cursor, timeout: str) -> None:
    """``lock_timeout`` to the end of the current transaction."""
    cur.execute("SELECT set_config('lock_timeout', %s, true)", [timeout])


def set_statement_timeout(cur: Cursor, timeout: str) -> None:
    """``statement_timeout`` to the end of the current transaction."""
    cur.execute("SELECT set_config('statement_timeout', %s, true)", [timeout])


def is_statement_timeout(exc: BaseException) -> bool:
    """Whether a database error is a statement cancelled (SQLSTATE 57014: statement_timeout,
    or pg_cancel_backend)."""
    return getattr(exc.__cause__, "sqlstate", None) == "57014"


@contextmanager
def lock_timeout_errors(what: str, timeout: str) -> Iterator[None]:
    """Turn a lock timeout (SQLSTATE 55P03) into LockTimeout: "try again later", not a crash."""
    try:
        yield
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != "55P03":
            raise
        raise LockTimeout(
            f"{what}: could not get a lock within the lock timeout ({timeout}); "
            "nothing of it changed, rerun later"
        ) from exc


# SQLSTATEs of a session the server ended: admin_shutdown (pg_terminate_backend),
# crash_shutdown, cannot_connect_now (starting or stopping); class 08 is a lost connection.
_SESSION_ENDED = {"57P01", "57P02", "57P03"}


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the database connection failing, not the statement.

    Worth a retry on a new connection: a connection refused or lost (psycopg reports those
    without a SQLSTATE, or class 08) or a session the server ended (57P01-57P03). Not a
    query cancelled (57014), a lock timeout (55P03) or any error of the SQL itself, even
    though Django and psycopg also call some of those ``OperationalError``.
    """
    if isinstance(exc, InterfaceError):  # "connection already closed"
        return True
    if not isinstance(exc, OperationalError):
        return False
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in _SESSION_ENDED


def sleep(cur: Any, seconds: float) -> None:
    """Keep the server busy in this session for ``seconds`` (pg_sleep)."""
    cur.execute("SELECT pg_sleep(%s)", [seconds])


def atomic(using: str) -> transaction.Atomic:
    return transaction.atomic(using=using)


@contextmanager
def snapshot(using: str) -> Iterator[Cursor]:
    """A transaction whose reads all see one snapshot (REPEATABLE READ), and its cursor.

    Inside a caller's transaction (a test's, say) it is a savepoint of that one, which
    already sees one snapshot per statement only: the caller's isolation level stays.
    """
    outermost = not connections[using].in_atomic_block
    with atomic(using), cursor(using) as cur:
        if outermost:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield cur


@contextmanager
def shard_errors(alias: str) -> Iterator[None]:
    """A shard that does not answer (or stops answering) is named by its alias
    (``ShardError``); any other error passes as it is."""
    try:
        yield
    except DatabaseError as exc:
        if not is_connection_error(exc):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ShardError(f"shard {alias!r} did not answer: {first}") from exc
