"""Django system checks over the partition tree (ids ``activity_grades.E0xx``).

Registered with the ``database`` tag: Django calls them with ``databases=None`` at
start-up and in plain ``manage.py check``, where they do nothing (system checks must
not touch the database then). ``manage.py check --database default`` runs them.
"""

from __future__ import annotations

from django.core import checks
from django.db import DatabaseError, connections


@checks.register(checks.Tags.database)
def partition_tree_check(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    if not databases:
        return []
    from . import health

    messages: list[checks.CheckMessage] = []
    for alias in databases:
        conn = connections[alias]
        try:
            if "activity_grades_partition" not in conn.introspection.table_names():
                continue  # not migrated on this database
            problems = health.run(alias)
        except DatabaseError as exc:
            messages.append(
                checks.Warning(
                    f"could not check the activity_grades partitions on {alias!r}: {exc}",
                    id="activity_grades.W001",
                )
            )
            continue
        for p in problems:
            hint = p.hint + (" (check_partitions --fix repairs it)" if p.fixable else "")
            messages.append(checks.Error(f"[{alias}] {p.message}", hint=hint, id=p.id))
    return messages
