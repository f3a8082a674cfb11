"""Partitions of a class placed on a shard (issue 16, second slice).

``create_partitions`` calls :func:`ensure_partition` and :func:`partition_ddl` for every
(class, term) it covers; for a class whose placement (``placement.shard_of``) is
``'local'`` they are ``db.ddl``'s, unchanged. For a class on a shard:

1. on the shard (its Django alias), one short transaction: the class or term table, a
   direct child of the shard's ``activity_grades`` parent, with the CHECKs, primary key,
   indexes and ownership marker of a local partition, and no trigger (the key index is on
   the coordinator); skipped when it exists;
2. on the coordinator, one short transaction under the advisory lock the routing trigger's
   on-demand path takes for the same (class, term): the foreign table of the same name
   (``db.shard_partitions``), its registry row, and, for a new term, the rows of that
   term waiting in the class table moved into it.

Each step checks what exists first, so a run killed between the two (remote table made,
foreign table not) is finished by the next; a registered foreign table whose remote
table is missing is not counted as existing by ``create_partitions`` (:func:`complete`),
which makes the remote table again.

Health (``check_partitions``): ``E037`` a foreign partition whose remote table is missing;
``E038`` a local partition of a class placed on a shard (made on demand by the routing
trigger because ``create_partitions`` did not run first).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from django.db import DatabaseError

from .. import placement
from ..core.constants import LOGGER_NAME, PARENT
from ..core.exceptions import PartitioningError
from ..core.settings import app_settings
from ..core.shards import LOCAL, server_name
from ..core.signals import partition_created, send_on_commit
from ..db import ddl
from ..db import shard_partitions as remote
from ..db import shards as fdw
from ..db.connection import Cursor, atomic, cursor, set_lock_timeout
from .shards import Blocker

__all__ = [
    "FOREIGN_MISSING_REMOTE",
    "LOCAL_ON_SHARD",
    "ORPHAN_REMOTE",
    "complete",
    "ensure_partition",
    "findings",
    "partition_ddl",
    "is_sharded",
    "shard_for",
]

logger = logging.getLogger(LOGGER_NAME)

FOREIGN_MISSING_REMOTE = "activity_grades.E037"
LOCAL_ON_SHARD = "activity_grades.E038"
ORPHAN_REMOTE = "activity_grades.E039"


def shard_for(class_id: str, using: str = "default") -> str:
    """The class's shard alias, or ``'local'``; no placement is recorded without SHARDS."""
    if not app_settings.shards:
        return LOCAL
    return placement.shard_of(class_id, using)


def is_sharded(class_id: str, using: str = "default") -> bool:
    """Whether the class's partitions live on a shard (records no placement: dry runs)."""
    return bool(app_settings.shards) and placement.would_place(class_id, using) != LOCAL


def _shard_schema(alias: str) -> str:
    with cursor(alias) as cur:
        return app_settings.SCHEMA or fdw.current_schema(cur)


def ensure_partition(
    class_id: str, term_id: str | None, using: str = "default"
) -> tuple[str, bool]:
    """Create one partition (and its class table) if missing; return (table, created).

    A local class: ``db.ddl.ensure_partition``. A class on a shard: the remote table, then
    the foreign table, each in its own short transaction (module docstring).

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
    if shard == LOCAL or _local_class_table(class_id, using):
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
    schema = _shard_schema(shard)
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


def _local_class_table(class_id: str, using: str) -> bool:
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


def partition_ddl(
    cur: Cursor,
    table: str,
    parent: str,
    class_id: str,
    term_id: str | None,
    starts_at: datetime | None,
    ends_at: datetime | None,
    using: str = "default",
) -> list[str]:
    """The statements ``ensure_partition`` runs (dry runs): for a shard, on both servers."""
    shard = placement.would_place(class_id, using) if app_settings.shards else LOCAL
    if shard == LOCAL or _local_class_table(class_id, using):
        return ddl.partition_ddl(cur, table, parent, class_id, term_id, starts_at, ends_at)
    bounds = remote.bounds(cur, term_id)
    schema = _shard_schema(shard)
    conn = cur.connection
    on_shard = remote.remote_ddl(
        schema,
        table,
        class_id,
        term_id,
        bounds,
        remote.index_names(cur, table),
        remote.unique_key_on(cur),
    )
    here = remote.foreign_ddl(
        cur, table, parent, server_name(shard), schema, class_id, term_id, bounds
    )
    return [f"/* on shard {shard} */ {s.as_string(conn)}" for s in on_shard] + [
        f"/* on the coordinator */ {s.as_string(conn)}" for s in here
    ]


def complete(
    existing: Mapping[tuple[str, str | None], str], using: str = "default"
) -> dict[tuple[str, str | None], str]:
    """``existing`` (registry: (class, term) -> table) without foreign partitions whose
    remote table is missing, so ``create_partitions`` makes those again.

    A shard that does not answer is left as the registry says (E030 reports it).
    """
    out = dict(existing)
    if not app_settings.shards:
        return out
    with cursor(using) as cur:
        foreign = remote.foreign_partitions(cur)
    by_server: dict[str, list[remote.ForeignPartition]] = {}
    for part in foreign:
        by_server.setdefault(part.server, []).append(part)
    for alias in app_settings.shards:
        parts = by_server.get(server_name(alias), [])
        if not parts:
            continue
        try:
            have = _remote_names(alias, parts)
        except DatabaseError as exc:
            logger.warning("shard %s: cannot list its tables: %s", alias, exc)
            continue
        for part in parts:
            if (part.schema_name, part.table_name) not in have:
                out.pop((part.class_id, part.term_id), None)
    return out


def _remote_names(alias: str, parts: list[remote.ForeignPartition]) -> set[tuple[str, str]]:
    have: set[tuple[str, str]] = set()
    with cursor(alias) as cur:
        for schema in {p.schema_name for p in parts}:
            have |= {(schema, name) for name in remote.remote_tables(cur, schema)}
    return have


def findings(using: str = "default") -> list[Blocker]:
    """E037 and E038 (module docstring); a shard that does not answer is E030's."""
    if not app_settings.shards:
        return []
    out: list[Blocker] = []
    with cursor(using) as cur:
        foreign = remote.foreign_partitions(cur)
        local = remote.local_partitions_placed_on_shards(cur)
    for alias in app_settings.shards:
        parts = [p for p in foreign if p.server == server_name(alias)]
        if not parts:
            continue
        try:
            have = _remote_names(alias, parts)
        except DatabaseError:
            continue
        for part in parts:
            if (part.schema_name, part.table_name) not in have:
                out.append(
                    Blocker(
                        FOREIGN_MISSING_REMOTE,
                        alias,
                        f"foreign partition {part.table} of class {part.class_id!r} points at "
                        f"{part.schema_name}.{part.table_name} on shard {alias!r}, which does "
                        "not exist: reads and writes of that partition fail",
                        f"manage.py create_partitions --class {part.class_id} makes the remote "
                        "table again (empty: restore its rows from a backup of the shard)",
                    )
                )
    for table, class_id, term_id, shard in local:
        out.append(
            Blocker(
                LOCAL_ON_SHARD,
                shard,
                f"class {class_id!r} is placed on shard {shard!r} but its partition {table} "
                f"(term {term_id!r}) is a local table on the coordinator: made on demand by "
                "the routing trigger because create_partitions had not made it on the shard",
                "its grades are safe (on the coordinator) and every path reads them; run "
                "manage.py create_partitions for the class's current and upcoming terms "
                "before grades arrive, and move these rows with manage.py move_class "
                f"{class_id} --to {shard}, or place the class back with "
                "placement.place(class, 'local') while it has no partitions",
            )
        )
    return out
