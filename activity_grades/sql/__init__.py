"""The app's SQL, one file per released version, and what migrations load it with.

Layout, naming and the release rule: README.md in this folder. Migrations import this
module only (never models or other live code), so it depends on nothing but the
standard library, ``django.db.migrations``, Django's settings (``AppSQL`` reads
``ACTIVITY_GRADES['SCHEMA']``) and psycopg's identifier quoting.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.db import migrations, transaction
from psycopg import sql as psql

__all__ = [
    "MANIFEST",
    "SQL_DIR",
    "STAGING_SCHEMA",
    "AppSQL",
    "function",
    "manifest_text",
    "read",
    "read_manifest",
    "run_in_batches",
    "run_sql_files",
    "sql_files",
    "write_manifest",
]

SQL_DIR: Path = Path(__file__).resolve().parent
"""This folder; every path the loader takes is relative to it, with ``/`` separators."""

MANIFEST: Path = SQL_DIR / "MANIFEST.sha256"
"""``sha256sum`` format: ``<hex digest>  <relative path>``, one released file a line."""


STAGING_SCHEMA = "activity_grades_staging"
"""Where ``migrate`` creates the app's objects beside an LMS table named ``activity_grades``
(``core.constants.STAGING_SCHEMA``; spelled here too, since migrations import nothing live)."""


class AppSQL(migrations.RunSQL):
    """``RunSQL`` that runs in the app's schema: the staging schema, or ``SCHEMA``.

    When the LMS already has an ``activity_grades`` table, ``migrate`` (the app's
    pre_migrate handler) creates the schema ``activity_grades_staging``; while it exists,
    every statement of the app's migrations runs with it first on ``search_path`` (to
    the end of the migration's transaction), so the released SQL, which names no
    schema, builds and changes the staged objects and never touches the LMS's table.
    Otherwise ``ACTIVITY_GRADES['SCHEMA']``, when set, is created if missing and put
    first the same way (Django's settings, not the app's code: migrations import
    nothing live).
    """

    # Its search_path is local to a transaction: inside a non-atomic migration (0013)
    # Django still runs each AppSQL in a transaction of its own.
    atomic = True

    def _run_sql(self, schema_editor: object, sqls: object) -> None:
        execute = schema_editor.execute  # type: ignore[attr-defined]
        _enter_app_schema(execute)
        super()._run_sql(schema_editor, sqls)  # type: ignore[misc]


def _enter_app_schema(execute: Callable[..., object]) -> None:
    """Put the staging schema, or ``SCHEMA`` (created if missing), first on search_path
    until the end of the transaction (AppSQL's docstring says why)."""
    schema = getattr(settings, "ACTIVITY_GRADES", {}).get("SCHEMA")
    if schema:
        create = psql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(psql.Identifier(schema))
        execute(create.as_string(None), params=None)
    execute(
        "SELECT set_config('search_path', quote_ident(s.nspname) || ', ' "
        "|| current_setting('search_path'), true) FROM (SELECT nspname FROM pg_namespace "
        "WHERE nspname IN (%s, %s) ORDER BY nspname = %s DESC LIMIT 1) s",
        params=[STAGING_SCHEMA, schema or STAGING_SCHEMA, STAGING_SCHEMA],
    )


class _Batches:
    """Run the statements a query file returns, one transaction per answer, until it
    returns none (``run_in_batches``)."""

    def __init__(self, relative: str) -> None:
        self.relative = relative
        self.text = read(relative)

    def __call__(self, apps: object, schema_editor: object) -> None:
        connection = schema_editor.connection  # type: ignore[attr-defined]
        previous: list[str] | None = None
        while True:
            with transaction.atomic(using=connection.alias), connection.cursor() as cur:
                _enter_app_schema(lambda text, params: cur.execute(text, params))
                cur.execute(self.text)
                statements = [row[0] for row in cur.fetchall()]
                if statements == previous:  # the last batch changed nothing: never loop
                    raise RuntimeError(f"{self.relative} returned the same statements twice")
                for statement in statements:
                    cur.execute(statement)
            if not statements:
                return
            previous = statements


def run_in_batches(forward: str, reverse: str) -> migrations.RunPython:
    """An operation for changes to every partition of a tree that may have thousands.

    ``forward`` and ``reverse`` are query files returning the statements of the next
    batch (each locks its tables until commit: a lock per partition in one transaction
    would fill the server's lock table). The migration using it must be non-atomic
    (``atomic = False``); each batch is one transaction in the app's schema.
    """
    return migrations.RunPython(_Batches(forward), _Batches(reverse), atomic=False)


def function(name: str, version: int) -> str:
    """Relative path of version ``version`` of the PL/pgSQL function ``name``.

    >>> function("activity_grades_route", 2)
    'functions/activity_grades_route/v2.sql'
    """
    if version < 1:
        raise ValueError(f"versions start at 1, not {version}")
    return f"functions/{name}/v{version}.sql"


def _path(relative: str) -> Path:
    parts = PurePosixPath(relative).parts
    if not relative.endswith(".sql") or PurePosixPath(relative).is_absolute() or ".." in parts:
        raise ValueError(f"not a relative path to an .sql file of {SQL_DIR}: {relative!r}")
    return SQL_DIR.joinpath(*parts)


def read(*relative_paths: str) -> str:
    """The text of the given .sql files, concatenated in the order given.

    A missing file raises ``FileNotFoundError`` when the migration is imported, not
    halfway through ``migrate``.
    """
    if not relative_paths:
        raise ValueError("read() needs at least one file")
    return "\n".join(_path(p).read_text(encoding="utf-8") for p in relative_paths)


def run_sql_files(forward: Sequence[str], reverse: Sequence[str] | None = None) -> AppSQL:
    """A ``RunSQL`` operation running the ``forward`` files, and ``reverse`` ones backwards.

    The files of each list are concatenated into one script, exactly like the SQL
    strings migrations used to hold. ``reverse=None`` makes the operation irreversible.
    """
    return AppSQL(read(*forward), read(*reverse) if reverse is not None else None)


def sql_files() -> list[str]:
    """Relative paths of every .sql file in this folder, sorted."""
    return sorted(p.relative_to(SQL_DIR).as_posix() for p in SQL_DIR.rglob("*.sql"))


def manifest_text() -> str:
    """The MANIFEST that matches the files on disk now."""
    lines = []
    for relative in sql_files():
        digest = hashlib.sha256(_path(relative).read_bytes()).hexdigest()
        lines.append(f"{digest}  {relative}\n")
    return "".join(lines)


def read_manifest(text: str | None = None) -> dict[str, str]:
    """``{relative path: sha256 hex digest}`` of MANIFEST (or of ``text``)."""
    if text is None:
        text = MANIFEST.read_text(encoding="utf-8")
    entries: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip():
            digest, relative = line.split("  ", 1)
            entries[relative] = digest
    return entries


def write_manifest() -> list[str]:
    """Rewrite MANIFEST from the files on disk.

    Returns the released files whose digest changed or that disappeared: each one
    breaks the rule that a released file is never edited, so the caller reports them.
    """
    old = read_manifest() if MANIFEST.exists() else {}
    text = manifest_text()
    new = read_manifest(text)
    MANIFEST.write_text(text, encoding="utf-8")
    return sorted(p for p, digest in old.items() if new.get(p) != digest)
