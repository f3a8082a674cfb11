"""App config: system checks, and the generated SQL functions after every migrate."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import post_migrate

from .core.constants import REGISTRY_TABLE
from .db import dispatch, lms


def _install_generated_functions(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """After every migrate: the LMS lookups and the trigger's fast path, from settings."""
    # Only once the app's tables exist (migrate --fake-initial, partial migrations).
    if REGISTRY_TABLE in connections[using].introspection.table_names():
        lms.install(using)
        dispatch.install(using)


class ActivityGradesConfig(AppConfig):
    name = "activity_grades"
    verbose_name = "Activity grades"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registering checks is ready()'s job)

        post_migrate.connect(
            _install_generated_functions, sender=self, dispatch_uid="activity_grades_lookups"
        )
