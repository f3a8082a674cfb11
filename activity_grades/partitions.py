"""A (class, term)'s partition, made where its class lives: the coordinator or a shard.

Below the operations so that the service's on-demand path (``ActivityGradeService``:
``table_for(create=True)``, ``record_many``) and ``create_partitions``
(``operations.create``, through ``operations.shard_partitions``) make a partition the same
way. For a local class it is ``db.ddl.ensure_partition``, unchanged. For a class on a shard
(``placement.shard_of``):

1. on the shard (its Django alias), one short transaction: the class or term table, a
   direct child of the shard's ``activity_grades`` parent, with the CHECKs, primary key,
   indexes and ownership marker of a local partition, and no trigger (the key index is on
   the coordinator); skipped when it exists;
2. on the coordinator, one short transaction under the advisory lock the routing trigger's
   on-demand path takes for the same (class, term): the foreign table of the same name
   (``db.shard_partitions``), its registry row, and, for a new term, the rows of that
   term waiting in the class table moved into it.

Each step checks what exists first, so a run killed between the two (remote table made,
foreign table not) is finished by the next.
"""

from __future__ import annotations

import logging

from . import placement
from .core.constants import LOGGER_NAME, PARENT
from .core.exceptions import PartitioningError
from .core.settings import app_settings
from .core.shards import LOCAL, server_name
from .core.signals import partition_created, send_on_commit
from .db import ddl
from .db import shard_partitions as remote
from .db import shards as fdw
from .db.connection import atomic, cursor, set_lock_timeout, shard_errors

__all__ = ["ORPHAN_REMOTE", "ensure_partition", "local_class_table", "shard_for", "shard_schema"]

logger = logging.getLogger(LOGGER_NAME)

ORPHAN_REMOTE = "activity_grades.E039"


def shard_for(class_id: str, using: str = "default") -> str:
    """The class's shard alias, or ``'local'``; no placement is recorded without SHARDS."""
    if not app_settings.shards:
        return LOCAL
    return placement.shard_of(class_id, using)


def shard_schema(alias: str) -> str:
    with cursor(alias) as cur:
        return app_settings.SCHEMA or fdw.current_schema(cur)


def ensure_partition(
    class_id: str, term_id: str | None, using: str = "default"
) -> tuple[str, bool]:
    """Create one partition (and its class table) if missing; return (table, created).

    A local class: ``db.ddl.ensure_partition``. A class on a shard: the remote table, then
    the foreign table, each in its own short transaction (module docstring).

    Inside a caller's ``transaction.atomic()`` on ``using``, the coordinator's part (the
    foreign table, the registry row, the advisory lock) is a savepoint of the caller's
    transaction and commits or rolls back with it; the shard's part commits at once (its
    own connection), unless the caller also holds a transaction on the shard's alias. A
    caller that rolls back leaves the remote table on the shard with no foreign table: the
    next ``ensure_partition`` or ``create_partitions`` for it finds it and only makes the
    foreign table.

    A sharded class whose class table is a local table (made on demand before its
    partitions were premade: E038) stays whole on the coordinator until ``move_class``:
    its missing term tables are made locally too, under that class table.

    An archived term of a sharded class (``restore_grades``) is made again on its shard
    under its old name, and its registry row goes back to 'live'.

    Raises:
        PartitioningError: an archived (class, term) whose table still exists (on the
            coordinator, or on the shard: an interrupted archive, E039).
    """
    shard = shard_for(class_id, using)
    if shard == LOCAL or local_class_table(class_id, using):
        return ddl.ensure_partition(class_id, term_id, using)
    parent = PARENT
    if term_id is not None:
        parent, _ = ensure_partition(class_id, None, using)
    with cursor(using) as cur:
        found = remote.registered(cur, class_id, term_id)
        table = found[0] if found else ddl.partition_name(cur, class_id, term_id)
        # An archived term (restore_grades): made again under the same name, and its
        # registry row goes back to 'live'.
        status = found[1] if found else None
        again = status is not None and status != "live"
        if again and (term_id is None or remote.relkind(cur, table) is not None):
            raise PartitioningError(
                f"partition {table} of class {class_id!r} term {term_id!r} is {status} "
                "and its table still exists on the coordinator: cannot make it again"
            )
        if found and not again and remote.relkind(cur, table) == "r":
            return table, False  # made on demand, locally: E038 reports it
        bounds = remote.bounds(cur, term_id)
        if term_id is not None and bounds.starts_at is None:
            raise PartitioningError(f"term {term_id!r} does not exist")
        names = remote.index_names(cur, table)
        unique = remote.unique_key_on(cur)
    with shard_errors(shard):
        schema = shard_schema(shard)
        _make_remote(shard, schema, table, class_id, term_id, bounds, names, unique, again)
    with atomic(using), cursor(using) as cur:
        set_lock_timeout(cur, app_settings.LOCK_TIMEOUT)
        remote.lock_partition(cur, class_id, term_id)
        now = remote.registered(cur, class_id, term_id)
        if now is not None and now[1] == "live":
            return table, False  # registered meanwhile, or only the remote table was missing
        remote.run(
            cur,
            remote.foreign_ddl(
                cur, table, parent, server_name(shard), schema, class_id, term_id, bounds
            ),
        )
        if now is None:
            remote.register(cur, class_id, term_id, table, parent, bounds)
        else:
            assert term_id is not None
            remote.relive(cur, class_id, term_id, table, parent, bounds)
        if term_id is not None:
            remote.adopt_waiting_rows(cur, parent, term_id, bounds)
        send_on_commit(partition_created, using, class_id=class_id, term_id=term_id, table=table)
    return table, True


def _make_remote(
    shard: str,
    schema: str,
    table: str,
    class_id: str,
    term_id: str | None,
    bounds: remote.Bounds,
    names: dict[str, str],
    unique: bool,
    again: bool,
) -> None:
    """The partition's table on its shard, in the shard's own short transaction."""
    with atomic(shard), cursor(shard) as cur:
        set_lock_timeout(cur, app_settings.LOCK_TIMEOUT)
        if again and table in remote.remote_tables(cur, schema):
            raise PartitioningError(
                f"the archived partition {table} of class {class_id!r} term {term_id!r} "
                f"still exists on shard {shard!r} (an archive interrupted before the shard's "
                f"drop, {ORPHAN_REMOTE}): run manage.py check_partitions --fix first"
            )
        if table not in remote.remote_tables(cur, schema):
            remote.run(
                cur, remote.remote_ddl(schema, table, class_id, term_id, bounds, names, unique)
            )
            logger.info("created %s.%s on shard %s", schema, table, shard)


def local_class_table(class_id: str, using: str) -> bool:
    with cursor(using) as cur:
        found = remote.registered(cur, class_id, None)
        local = found is not None and remote.relkind(cur, found[0]) == "r"
    if local:
        logger.warning(
            "class %s is placed on a shard but its class table is local (E038): "
            "its partitions are made on the coordinator until move_class moves it",
            class_id,
        )
    return local
