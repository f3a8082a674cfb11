"""Partitions of a class placed on a shard (issue 16, second slice).

``create_partitions`` calls :func:`ensure_partition` and :func:`partition_ddl` for every
(class, term) it covers; for a class whose placement (``placement.shard_of``) is
``'local'`` they are ``db.ddl``'s, unchanged. For a class on a shard, the remote table on
the shard, then the foreign table on the coordinator, each in its own short transaction.
:func:`ensure_partition` lives one floor down, in ``activity_grades.partitions``, because
the service's on-demand path calls it too; it is re-exported here.

A registered foreign table whose remote table is missing is not counted as existing by
``create_partitions`` (:func:`complete`), which makes the remote table again.

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
from ..core.constants import LOGGER_NAME
from ..core.settings import app_settings
from ..core.shards import LOCAL, server_name
from ..db import ddl
from ..db import shard_partitions as remote
from ..db.connection import Cursor, cursor
from ..partitions import ORPHAN_REMOTE, ensure_partition, local_class_table, shard_for, shard_schema
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


def is_sharded(class_id: str, using: str = "default") -> bool:
    """Whether the class's partitions live on a shard (records no placement: dry runs)."""
    return bool(app_settings.shards) and placement.would_place(class_id, using) != LOCAL


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
    if shard == LOCAL or local_class_table(class_id, using):
        return ddl.partition_ddl(cur, table, parent, class_id, term_id, starts_at, ends_at)
    bounds = remote.bounds(cur, term_id)
    schema = shard_schema(shard)
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
