"""Health checks of month tables (issue 15), run by ``operations.repair.plan``.

Ids (stable, documented in docs/admin.md):

- ``activity_grades.E021`` a month table lacks its own CHECK (``activity_grades_month_check``)
  or its month lies outside its term's registered bounds — by hand (the hint says how)
- ``activity_grades.E022`` a live month registry row names a table that does not exist, or
  one that is no longer a child of its term table (its grades are invisible through the
  term) — by hand
- ``activity_grades.E023`` an interrupted ``create_partitions --regranulate``: a term by
  month still holds rows in its term table itself, or a term by term still has month
  tables — fixable: the regranulate runs again
- ``activity_grades.E024`` the database's ``activity_grades_granularity()`` disagrees with
  ``PARTITION_GRANULARITY`` (the setting changed without ``migrate``): term tables the
  trigger creates on demand take the old granularity — fixable

The month tables' indexes, inherited CHECKs and triggers are checked with the term
tables' (E004-E006, E011): ``db.months.live_partitions``.
"""

from __future__ import annotations

from collections.abc import Callable

from ..core.constants import Granularity
from ..core.settings import app_settings
from ..db import months
from ..db.connection import Cursor
from . import regranulate
from .problems import Problem

__all__ = ["check_months"]


def check_months(cur: Cursor, using: str = "default") -> list[Problem]:
    """E021-E024 over every live month table and month term; a fixed number of queries
    (E023 one ``EXISTS`` per month term, in UNION ALL batches)."""
    if not months.installed(cur):
        return []
    out: list[Problem] = []
    for h in months.health(cur):
        if not h.exists or not h.inherits:
            out.append(
                Problem(
                    "activity_grades.E022",
                    f"month table {h.table} "
                    + (
                        "does not exist"
                        if not h.exists
                        else f"is no longer a child of its term table {h.term_table}: its "
                        "grades are invisible through the term"
                    ),
                    "ALTER TABLE ... INHERIT the term table again, or (when it is gone) "
                    "DELETE its row from activity_grades_month and its grades' key rows",
                    table=h.table,
                )
            )
            continue
        if not h.has_check or not h.inside_term:
            out.append(
                Problem(
                    "activity_grades.E021",
                    f"month table {h.table} "
                    + (
                        "lacks its CHECK activity_grades_month_check"
                        if not h.has_check
                        else f"covers a month outside the bounds of its term table {h.term_table}"
                    ),
                    "re-add the CHECK from its activity_grades_month row (created_at >= "
                    "starts_at AND created_at < ends_at); a term whose dates changed: "
                    "create_partitions --regranulate TERM --to term, then --to month",
                    table=h.table,
                )
            )
    for class_id, term_id, table, granularity in months.unfinished(cur):
        where = (
            "still holds rows in its term table itself"
            if granularity == Granularity.MONTH.value
            else "still has month tables"
        )
        out.append(
            Problem(
                "activity_grades.E023",
                f"term {term_id!r} of class {class_id!r} is by {granularity} but {table} {where} "
                "(an interrupted regranulate)",
                f"manage.py create_partitions --regranulate {term_id} --to {granularity}",
                table=table,
                fix=_regranulator(using, term_id, granularity),
            )
        )
    database = months.database_granularity(using)
    wanted = app_settings.PARTITION_GRANULARITY
    if database is not None and database != wanted and not app_settings.validate():
        out.append(
            Problem(
                "activity_grades.E024",
                f"the database creates new terms by {database} but PARTITION_GRANULARITY is "
                f"{wanted!r}",
                "manage.py migrate or create_partitions installs the setting",
                fix=_granularity_installer(using),
            )
        )
    return out


def _regranulator(using: str, term_id: str, granularity: str) -> Callable[[], str]:
    def fix() -> str:
        result = regranulate.plan(term_id, granularity, using=using).apply()
        return f"regranulated term {term_id!r} to {granularity}: {result.moved} rows moved"

    return fix


def _granularity_installer(using: str) -> Callable[[], str]:
    def fix() -> str:
        months.install_granularity(using)
        return f"new terms are created by {app_settings.PARTITION_GRANULARITY}"

    return fix
