"""``ReplicaRouter``: the app's reads on read replicas, its writes on the primary.

List it in ``DATABASE_ROUTERS`` and name the replicas in
``ACTIVITY_GRADES['READ_REPLICAS']`` (docs/replicas.md). It decides only for the app's
own models (grades, archived grades, the partition registry), and only while replicas are
named; other models, or no replicas, are left to the project's other routers. Django
already sends ``select_for_update()``, ``get_or_create()`` and every write through
``db_for_write``: those go to the primary, and open the read-your-writes window
(``replicas.note_write``).
"""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS

from . import replicas
from .core.constants import APP_LABEL
from .core.settings import app_settings

__all__ = ["ReplicaRouter"]


def _ours(model: type[Any]) -> bool:
    return bool(model._meta.app_label == APP_LABEL)


class ReplicaRouter:
    def db_for_read(self, model: type[Any], **hints: Any) -> str | None:
        # No replicas: no opinion (the project's other routers, or the default, decide).
        if not _ours(model) or not app_settings.READ_REPLICAS:
            return None
        return replicas.reader(DEFAULT_DB_ALIAS)

    def db_for_write(self, model: type[Any], **hints: Any) -> str | None:
        if not _ours(model) or not app_settings.READ_REPLICAS:
            return None
        replicas.note_write()
        # Explicit: an instance read from a replica would otherwise be saved there.
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        if not app_settings.READ_REPLICAS:
            return None
        ours = {DEFAULT_DB_ALIAS, *app_settings.READ_REPLICAS}
        if obj1._state.db in ours and obj2._state.db in ours:
            return True
        return None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        # A replica replays the primary's schema: never migrate it.
        return False if db in app_settings.READ_REPLICAS else None
