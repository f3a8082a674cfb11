"""Sizes and estimates of foreign partitions, read from their shards (issue 16).

On the coordinator a foreign partition has no storage: ``pg_total_relation_size`` of a
foreign table is 0 and its row estimate means nothing. The figures live on the shard,
in the remote table the foreign table points at. ``foreign_tables`` lists, in one
coordinator query, every registered partition that is a foreign table with its server and
remote name; ``remote_stats`` reads every wanted table of one shard in one query on the
shard's Django alias (the same columns the coordinator's ``catalog.partition_stats``
gives a local partition); ``remote_counts`` is ``--exact``'s one ``count(*)`` query per
shard (a ``UNION ALL`` over its tables). Both run under a ``statement_timeout``
(``SHARD_STATS_TIMEOUT``), so a shard that hangs is reported, not waited for.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import Error, connections, transaction
from psycopg import sql

from ..core.shards import alias_of_server
from . import shard_partitions
from .catalog import TABLE_FIGURES, TABLE_FIGURES_JOINS
from .connection import Cursor, cursor, execute, set_statement_timeout

__all__ = [
    "RemoteTable",
    "STAT_COLUMNS",
    "foreign_tables",
    "has_alias",
    "remote_counts",
    "remote_stats",
]


@dataclass(frozen=True)
class RemoteTable:
    """A registered partition that is a foreign table on the coordinator."""

    table: str  # its name on the coordinator (the registry's)
    server: str  # the foreign server
    alias: str | None  # the shard's alias: the server without its prefix (None: not ours)
    schema_name: str  # remote schema ('' when the foreign table names none)
    table_name: str  # remote table


def foreign_tables(using: str = "default") -> list[RemoteTable]:
    """Every registered partition that is a foreign table, whatever its status, month
    tables included: one coordinator query (``shard_partitions.foreign_partitions``)."""
    with cursor(using) as cur:
        found = shard_partitions.foreign_partitions(cur, statuses=None, month_tables=True)
    return [
        RemoteTable(f.table, f.server, alias_of_server(f.server), f.schema_name, f.table_name)
        for f in found
    ]


# One row per wanted (schema, table) of a shard: the columns of catalog.partition_stats
# that come from the table itself. An empty schema is the shard connection's own.
_REMOTE_SQL = sql.SQL("""
WITH wanted AS (
    SELECT w.schema_name, w.table_name,
           to_regclass(format('%%I.%%I', coalesce(nullif(w.schema_name, ''), current_schema()),
                              w.table_name)) AS oid
      FROM unnest(%s::text[], %s::text[]) AS w(schema_name, table_name)
)
SELECT r.schema_name, r.table_name,
       {figures}
  FROM wanted r
{joins}""").format(figures=TABLE_FIGURES, joins=TABLE_FIGURES_JOINS)

STAT_COLUMNS = (
    "present",
    "rows",
    "table_bytes",
    "index_bytes",
    "toast_bytes",
    "total_bytes",
    "dead_rows",
    "seq_scan",
    "seq_tup_read",
    "idx_scan",
    "idx_tup_fetch",
    "inserted",
    "updated",
    "deleted",
    "last_vacuum",
    "last_analyze",
    "last_vacuum_auto",
    "last_analyze_auto",
)
"""The figures ``remote_stats`` reads for each table (fields of ``PartitionStats``)."""


def has_alias(alias: str) -> bool:
    """Whether ``alias`` is in DATABASES (a shard's server may outlive its alias: E036)."""
    return alias in connections


@contextmanager
def _on_shard(alias: str, timeout: str) -> Iterator[Cursor]:
    """A cursor on the shard ``alias`` in a transaction of its own whose statements stop
    after ``timeout`` (``statement_timeout``): a shard that answers but hangs (a lock, an
    overloaded server) fails like one that is down instead of holding up the admin page or
    the scrape. On any error the connection is closed, so the next use reconnects instead
    of reusing a dead one."""
    try:
        with transaction.atomic(using=alias), connections[alias].cursor() as cur:
            set_statement_timeout(cur, timeout)
            yield cur
    except Error:
        connections[alias].close()
        raise


def remote_stats(
    alias: str, tables: list[tuple[str, str]], timeout: str
) -> dict[tuple[str, str], dict[str, Any]]:
    """(schema, table) -> the ``STAT_COLUMNS`` of each wanted table on the shard ``alias``.

    One query on the shard for all of them (an empty list still connects: it tells
    whether the shard answers), stopped after ``timeout``. Raises the driver's error when
    the shard does not answer in time (``connection.is_statement_timeout``: it hung).
    """
    schemas = [s for s, _ in tables]
    names = [t for _, t in tables]
    with _on_shard(alias, timeout) as cur:
        execute(cur, _REMOTE_SQL, [schemas, names])
        rows = cur.fetchall()
    return {(r[0], r[1]): dict(zip(STAT_COLUMNS, r[2:], strict=True)) for r in rows}


def remote_counts(
    alias: str, tables: list[tuple[str, str]], timeout: str
) -> dict[tuple[str, str], int]:
    """(schema, table) -> ``count(*)`` of each table on the shard, one query for all
    stopped after ``timeout`` (``ONLY``: a shard's tables are flat, this only keeps the
    count to the table itself)."""
    if not tables:
        return {}
    with _on_shard(alias, timeout) as cur:
        execute(cur, "SELECT current_schema()")
        own = str(cur.fetchone()[0])
        parts = [
            sql.SQL("SELECT {}::int AS i, count(*) FROM ONLY {}").format(
                sql.Literal(i), sql.Identifier(schema or own, table)
            )
            for i, (schema, table) in enumerate(tables)
        ]
        execute(cur, sql.SQL(" UNION ALL ").join(parts))
        found = {int(i): int(n) for i, n in cur.fetchall()}
    return {key: found[i] for i, key in enumerate(tables)}
