from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _install_lookups(sender, using: str = "default", **kwargs) -> None:
    from django.db import connections

    from . import dispatch, lookups

    # Only once the app's tables exist (migrate --fake-initial, partial migrations).
    if "activity_grades_partition" in connections[using].introspection.table_names():
        lookups.install(using)
        dispatch.install(using)


class ActivityGradesConfig(AppConfig):
    name = "activity_grades"
    verbose_name = "Activity grades"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)

        post_migrate.connect(_install_lookups, sender=self, dispatch_uid="activity_grades_lookups")
