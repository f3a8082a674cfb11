"""App config: system checks, the staging schema before migrate, the generated SQL after it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError
from django.db import connections
from django.db.migrations.recorder import MigrationRecorder
from django.db.models.signals import post_migrate, pre_migrate

from .core.constants import PARENT, REGISTRY_TABLE, STAGING_SCHEMA
from .core.settings import app_settings
from .db import dispatch, lms, months, staging
from .operations.convert import check_lms_table
from .sql.guard import check_plan

_register: Callable[[], object] | None
try:
    from .reporting import prometheus

    _register = prometheus.register
except ImportError:  # the [prometheus] extra (prometheus_client) is not installed
    _register = None


def _stage_beside_lms_table(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """Before the app's first migration: an LMS table named activity_grades stays as it is.

    The app's objects are then built in the staging schema (``activity_grades.sql.AppSQL``)
    and ``convert_grades_table`` moves them beside it. A table that could not become a
    child of the parent stops ``migrate`` here, before anything is created.
    """
    connection = connections[using]
    applied = MigrationRecorder(connection).applied_migrations()
    if (sender.label, "0001_initial") in applied:
        return
    with connection.cursor() as cur:
        table = staging.parent_table(cur)
        if table is None or table.is_app_parent:
            return
        problems, _ = check_lms_table(cur, table.oid)
        if problems:
            raise CommandError(
                f"the LMS's table {table.schema}.{PARENT} cannot be converted to the "
                "app's partitions as it stands:\n  - "
                + "\n  - ".join(problems)
                + "\nNothing was changed; fix these, then run migrate again (docs/adopting.md)."
            )
        staging.prepare(cur)


def _refuse_data_loss(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """Before a plan that unapplies migrations: stop if any of them would drop grades.

    Each such migration ends with ``activity_grades.sql.guard.RefuseDataLoss``, which
    also refuses on its own; checking the whole plan first means nothing is unapplied
    at all (``migrate activity_grades zero`` would otherwise unapply 0009 to 0004 and
    stop at 0003).
    """
    check_plan(connections[using], kwargs.get("plan") or [])


def _install_generated_functions(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """After every migrate: the LMS lookups and the trigger's fast path, from settings."""
    connection = connections[using]
    with connection.cursor() as cur, staging.session(cur, app_settings.SCHEMA) as staged:
        # Only once the app's tables exist (migrate --fake-initial, partial migrations).
        if REGISTRY_TABLE in connection.introspection.table_names():
            lms.install(using)
            months.install_granularity(using)
            dispatch.install(using)
    if staged:
        out = kwargs.get("stdout") or sys.stdout
        out.write(
            f"activity_grades: the LMS's own table {PARENT} was left as it is; the app's "
            f"objects wait in schema {STAGING_SCHEMA}. Next: manage.py convert_grades_table "
            "--to partitioned --dry-run (docs/adopting.md).\n"
        )


_registered: list[object] = []


def _register_collector() -> None:
    """The collector in prometheus_client's REGISTRY, once per process (PROMETHEUS_REGISTER)."""
    if _register is None:
        raise ImproperlyConfigured(
            "ACTIVITY_GRADES['PROMETHEUS_REGISTER'] needs prometheus_client: pip install "
            "'django-activity-grades[prometheus]'"
        )
    if not _registered:
        _registered.append(_register())


class ActivityGradesConfig(AppConfig):
    name = "activity_grades"
    verbose_name = "Activity grades"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registering checks is ready()'s job)

        pre_migrate.connect(
            _stage_beside_lms_table, sender=self, dispatch_uid="activity_grades_staging"
        )
        pre_migrate.connect(
            _refuse_data_loss, sender=self, dispatch_uid="activity_grades_refuse_data_loss"
        )
        post_migrate.connect(
            _install_generated_functions, sender=self, dispatch_uid="activity_grades_lookups"
        )
        if app_settings.PROMETHEUS_REGISTER:
            _register_collector()
