"""The staging schema: the app's objects beside an LMS table already named activity_grades.

``migrate`` cannot create the parent under a name the LMS's own grades table holds. It
creates the schema ``activity_grades_staging`` first (``prepare``), and the app's
migrations and generated functions are then built there (``activity_grades.sql.AppSQL``
and ``session``); ``manage.py convert_grades_table`` moves them next to the LMS's table.
While the schema exists, code that works on the app's objects puts it first on
``search_path`` (``use``), so the released SQL, which names no schema, finds them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from psycopg import sql

from ..core.constants import PARENT, STAGING_SCHEMA
from .connection import Cursor, execute
from .convert import Rel

__all__ = [
    "ParentTable",
    "exists",
    "on_search_path",
    "parent_table",
    "prepare",
    "session",
    "use",
]

PARENT_MARKER = "activity_grades:parent"


class ParentTable:
    """The table ``activity_grades`` resolves to on the session's ``search_path``."""

    def __init__(self, schema: str, oid: int, marker: str | None) -> None:
        self.schema, self.oid, self.marker = schema, oid, marker

    @property
    def is_app_parent(self) -> bool:
        return self.marker == PARENT_MARKER

    @property
    def identifier(self) -> Rel:
        return Rel(self.schema, PARENT)


def exists(cur: Cursor) -> bool:
    """Whether the staging schema exists (the app's objects wait in it)."""
    cur.execute("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)", [STAGING_SCHEMA])
    found: bool = cur.fetchone()[0]
    return found


def on_search_path(cur: Cursor, schema: str) -> bool:
    """Whether ``schema`` is on the session's search_path (True while it does not exist:
    migrate creates it)."""
    cur.execute(
        "SELECT NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s) "
        "OR %s = ANY(current_schemas(false))",
        [schema, schema],
    )
    found: bool = cur.fetchone()[0]
    return found


def parent_table(cur: Cursor) -> ParentTable | None:
    """Which table ``activity_grades`` names here: the app's parent, the LMS's, or none."""
    cur.execute(
        "SELECT n.nspname, c.oid::bigint, obj_description(c.oid, 'pg_class') FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
        [PARENT],
    )
    row = cur.fetchone()
    return ParentTable(*row) if row else None


def prepare(cur: Cursor) -> ParentTable | None:
    """Before the app's first migration: create the staging schema if the name is taken.

    Returns the LMS's table when there is one (the caller checks it fits), else None.
    """
    table = parent_table(cur)
    if table is None or table.is_app_parent:
        return None
    execute(cur, sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(STAGING_SCHEMA)))
    return table


def _target(schema: str | None) -> tuple[str, str]:
    """(staging schema, the configured one or the staging one again) for the queries below."""
    return STAGING_SCHEMA, schema or STAGING_SCHEMA


_FIRST = (
    "SELECT set_config('search_path', quote_ident(s.nspname) || ', ' "
    "|| current_setting('search_path'), {local}) FROM (SELECT nspname FROM pg_namespace "
    "WHERE nspname IN (%s, %s) ORDER BY nspname = %s DESC LIMIT 1) s"
)


def use(cur: Cursor, schema: str | None = None) -> bool:
    """Put the staging schema (else ``schema``, if given and existing) first on
    ``search_path`` to the end of the transaction; False when neither exists."""
    staged, other = _target(schema)
    cur.execute(_FIRST.format(local="true"), [staged, other, staged])
    return cur.fetchone() is not None


@contextmanager
def session(cur: Cursor, schema: str | None = None) -> Iterator[bool]:
    """``use`` for a whole session (autocommit code), restoring ``search_path`` after.

    Yields whether the staging schema is the one put first.
    """
    cur.execute("SELECT current_setting('search_path')")
    before = cur.fetchone()[0]
    staged, other = _target(schema)
    cur.execute(_FIRST.format(local="false"), [staged, other, staged])
    row = cur.fetchone()
    try:
        yield row is not None and exists(cur)
    finally:
        cur.execute("SELECT set_config('search_path', %s, false)", [before])
