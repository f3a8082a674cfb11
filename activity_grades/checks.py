"""Django system checks of activity_grades.

- ``activity_grades.E100`` (every start-up, no database access): a key of
  ``settings.ACTIVITY_GRADES`` that is unknown, of the wrong type or impossible.
- ``activity_grades.E101``/``E102`` (``manage.py check --database default``, once every
  migration is applied): a table or column named by a setting that the database does
  not have.
- ``activity_grades.E103`` (same): ``TERM_YEAR_COLUMN`` is a foreign key while
  ``TERM_YEAR_TABLE`` is unset, so the academic years would be the ids it holds.
- ``activity_grades.E104`` (same): a term start/end column that is not ``date``,
  ``timestamp`` or ``timestamptz``.
- ``activity_grades.E001``-``E011`` (``manage.py check --database default``): the
  partition tree's health (``operations.repair``).

Database checks are registered with the ``database`` tag: Django calls them with
``databases=None`` at start-up and in plain ``manage.py check``, where they do nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core import checks
from django.db import DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor

from .core.constants import REGISTRY_TABLE, STAGING_SCHEMA
from .core.settings import app_settings
from .db import catalog, staging
from .operations import repair
from .reporting import locks

__all__ = ["lms_tables_check", "partition_tree_check", "settings_check"]

_TERM_DATE_KEYS = ("TERM_START_COLUMN", "TERM_END_COLUMN")


def _lms_columns() -> dict[str, tuple[str, ...]]:
    """Table setting -> the column settings that name its columns, as the settings use them."""
    source = app_settings.term_year_source
    terms = ("TERM_ID_COLUMN", *_TERM_DATE_KEYS)
    out: dict[str, tuple[str, ...]] = {
        "ACTIVITIES_TABLE": ("ACTIVITY_ID_COLUMN", "ACTIVITY_CLASS_COLUMN"),
        # With TERM_YEAR_STARTS the year comes from the start date: no column to check.
        "TERMS_TABLE": terms if source == "rule" else (*terms, "TERM_YEAR_COLUMN"),
    }
    if source == "table":
        out["TERM_YEAR_TABLE"] = ("TERM_YEAR_TABLE_ID_COLUMN", "TERM_YEAR_TABLE_LABEL_COLUMN")
    return out


@checks.register()
def settings_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return [
        checks.Error(
            f"ACTIVITY_GRADES[{key!r}] {problem}" if key else problem,
            hint="see the settings table in the README of activity_grades",
            id="activity_grades.E100",
        )
        for key, problem in app_settings.validate()
    ]


def _migrated(alias: str) -> bool:
    return REGISTRY_TABLE in connections[alias].introspection.table_names()


def _on_search_path(alias: str, schema: str) -> bool:
    with connections[alias].cursor() as cur:
        return staging.on_search_path(cur, schema)


def _pending_migrations(alias: str) -> bool:
    """Whether ``migrate`` still has work on this database (it runs these checks first)."""
    executor = MigrationExecutor(connections[alias])
    return bool(executor.migration_plan(executor.loader.graph.leaf_nodes()))


@checks.register(checks.Tags.database)
def lms_tables_check(
    app_configs: Any = None, databases: Sequence[str] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    if not databases or app_settings.validate():
        return []  # E100 already says what to fix first
    out: list[checks.CheckMessage] = []
    for alias in databases:
        if _pending_migrations(alias):
            continue  # the LMS's tables may come with the migrations migrate is about to run
        for table_key, column_keys in _lms_columns().items():
            table = getattr(app_settings, table_key)
            columns = catalog.columns_of(alias, table)
            if columns is None:
                out.append(
                    checks.Error(
                        f"[{alias}] table {table!r} named by ACTIVITY_GRADES[{table_key!r}] "
                        "does not exist",
                        hint="create the LMS's table, or set the key to the table's name",
                        id="activity_grades.E101",
                    )
                )
                continue
            for key in column_keys:
                column = getattr(app_settings, key)
                if column not in columns:
                    out.append(
                        checks.Error(
                            f"[{alias}] column {column!r} named by ACTIVITY_GRADES[{key!r}] "
                            f"does not exist in table {table!r}",
                            hint="columns of that table: " + ", ".join(sorted(columns)),
                            id="activity_grades.E102",
                        )
                    )
            if table_key == "TERMS_TABLE":
                out += _term_column_errors(alias, table, columns)
    return out


def _term_column_errors(alias: str, table: str, columns: dict[str, str]) -> list[checks.Error]:
    """E104 for start/end columns of another type; E103 for a year column that is a foreign key."""
    out: list[checks.Error] = []
    for key in _TERM_DATE_KEYS:
        column = getattr(app_settings, key)
        if column in columns and catalog.date_kind(columns[column]) is None:
            out.append(
                checks.Error(
                    f"[{alias}] column {column!r} named by ACTIVITY_GRADES[{key!r}] is of type "
                    f"{columns[column]!r}; term dates must be date, timestamp or timestamptz",
                    hint="point the setting at a column of one of those types, or convert it",
                    id="activity_grades.E104",
                )
            )
    column = app_settings.TERM_YEAR_COLUMN
    if app_settings.term_year_source != "column" or column not in columns:
        return out
    target = catalog.foreign_key_target(alias, table, column)
    if target is not None:
        ref_table, ref_column = target
        labels = catalog.columns_of(alias, ref_table) or {}
        out.append(
            checks.Error(
                f"[{alias}] column {column!r} named by ACTIVITY_GRADES['TERM_YEAR_COLUMN'] is a "
                f"foreign key to table {ref_table!r}, so the academic years would be its ids: "
                f"set ACTIVITY_GRADES['TERM_YEAR_TABLE'] = {ref_table!r}, "
                f"'TERM_YEAR_TABLE_ID_COLUMN' = {ref_column!r} and "
                "'TERM_YEAR_TABLE_LABEL_COLUMN' = the column that names the year",
                hint=f"columns of {ref_table!r}: " + ", ".join(sorted(labels)),
                id="activity_grades.E103",
            )
        )
    return out


@checks.register(checks.Tags.database)
def partition_tree_check(
    app_configs: Any = None, databases: Sequence[str] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    if not databases:
        return []
    messages: list[checks.CheckMessage] = []
    for alias in databases:
        try:
            with connections[alias].cursor() as cur:
                staged = staging.exists(cur)
            if staged:
                messages.append(
                    checks.Warning(
                        f"[{alias}] the LMS's own activity_grades table is not converted yet: "
                        f"the app's objects wait in schema {STAGING_SCHEMA}",
                        hint="manage.py convert_grades_table --to partitioned --dry-run, then "
                        "without --dry-run (docs/adopting.md)",
                        id="activity_grades.W010",
                    )
                )
                continue
            schema = app_settings.SCHEMA
            if schema and not _on_search_path(alias, schema):
                messages.append(
                    checks.Error(
                        f"[{alias}] ACTIVITY_GRADES['SCHEMA'] = {schema!r} is not on the "
                        "connection's search_path: Django and the app would not find the "
                        "app's tables",
                        hint=f"DATABASES[{alias!r}]['OPTIONS'] = {{'options': "
                        f"'-c search_path=public,{schema}'}} (docs/adopting.md)",
                        id="activity_grades.E013",
                    )
                )
                continue
            if not _migrated(alias):
                continue
            problems = repair.plan(alias).problems
        except DatabaseError as exc:
            messages.append(
                checks.Warning(
                    f"could not check the activity_grades partitions on {alias!r}: {exc}",
                    id="activity_grades.W001",
                )
            )
            continue
        room = locks.headroom(alias)
        if room.low:
            messages.append(
                checks.Warning(
                    f"[{alias}] {room.sentence()} (fewer than {locks.CONCURRENT})",
                    hint="keep queries off the parent (filters that name partitions; "
                    "ROUTING_PARTITION_LIMIT), or raise max_locks_per_transaction",
                    id="activity_grades.W012",
                )
            )
        for p in problems:
            hint = p.hint + (" (check_partitions --fix repairs it)" if p.fixable else "")
            messages.append(checks.Error(f"[{alias}] {p.message}", hint=hint, id=p.id))
    return messages
