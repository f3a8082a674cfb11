"""Archiving a sharded class's terms (issue 16): the shard's part of ``archive``.

The archive stays on the coordinator (docs/sharding.md, "Archiving a sharded term"): a
foreign leaf's rows are read through its foreign table into the coordinator's chunk
tables and verified there like a local leaf's. The shard's part:

1. before the coordinator's transaction, a transaction on the shard (its alias) that
   checks the remote table's marker and locks it ``SHARE ROW EXCLUSIVE``: writers of the
   leaf (through the coordinator or straight on the shard) wait; the coordinator's own
   reads through postgres_fdw (``ACCESS SHARE``) do not. A foreign table cannot be
   locked on the coordinator (``LOCK TABLE`` refuses foreign tables);
2. the coordinator's transaction (``archive._LeafArchiver``): copy, verify, key rows,
   ``DROP FOREIGN TABLE``, registry row 'archived';
3. after its commit, still in the shard's transaction: ``ACCESS EXCLUSIVE`` and
   ``DROP TABLE`` of the remote table, then the shard's commit.

An interruption between 2 and 3 (the process killed, the shard lost) leaves the remote
table on the shard with no foreign table pointing at it and its term archived on the
coordinator: ``activity_grades.E039`` (:func:`findings`). The next ``archive_grades`` or
``restore_grades`` and ``check_partitions --fix`` finish it (:func:`finish`): the remote
table is dropped only when its marker is the app's and its rows' count and checksum equal
the archive's for that (class, term), read under ``ACCESS EXCLUSIVE`` on the shard.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import DatabaseError

from ..core.constants import LOGGER_NAME, PARTITION_MARKER
from ..core.exceptions import ArchiveError
from ..core.settings import app_settings
from ..core.shards import server_name
from ..db import archive as sql_archive
from ..db import catalog, chunks
from ..db import shard_partitions as remote
from ..db.connection import Cursor, atomic, cursor, set_lock_timeout
from ..partitions import shard_schema
from .problems import Problem
from .shard_partitions import ORPHAN_REMOTE

__all__ = [
    "ORPHAN_REMOTE",
    "Orphan",
    "RemoteLeaf",
    "drop_held",
    "findings",
    "finish",
    "finish_all",
    "held",
    "orphans",
    "remote_leaf",
]

logger = logging.getLogger(LOGGER_NAME)


@dataclass(frozen=True)
class RemoteLeaf:
    """Where a foreign leaf's rows are: its shard's alias, schema and table there."""

    shard: str
    schema: str
    table: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.table} on shard {self.shard}"


@dataclass(frozen=True)
class Orphan:
    """An archived term's remote table still on its shard (E039)."""

    table: str
    class_id: str
    term_id: str
    academic_year: str
    leaf: RemoteLeaf


def remote_leaf(cur: Cursor, table: str) -> RemoteLeaf | None:
    """The shard behind the foreign partition ``table``; None for a local table.

    Raises:
        ArchiveError: a foreign table of a server that is no shard of ``SHARDS``.
    """
    target = remote.foreign_target(cur, table)
    if target is None:
        return None
    server, schema, name = target
    for alias in app_settings.shards:
        if server_name(alias) == server:
            return RemoteLeaf(alias, schema, name)
    raise ArchiveError(
        f"{table} is a foreign table of server {server!r}, which is no shard of "
        "ACTIVITY_GRADES['SHARDS']: refusing to archive it"
    )


def _check_remote(cur: Cursor, leaf: RemoteLeaf) -> None:
    tables = remote.remote_tables(cur, leaf.schema)
    if leaf.table not in tables:
        raise ArchiveError(
            f"{leaf} does not exist (activity_grades.E037): refusing to archive its foreign "
            "table; see check_partitions"
        )
    if tables[leaf.table] != PARTITION_MARKER:
        raise ArchiveError(
            f"refusing to archive {leaf}: its comment is {tables[leaf.table]!r}, not the "
            f"ownership marker {PARTITION_MARKER!r}"
        )


@contextmanager
def held(leaf: RemoteLeaf) -> Iterator[Cursor]:
    """A transaction on the shard holding the remote table ``SHARE ROW EXCLUSIVE``
    (marker checked); ends when the block does (module docstring, steps 1 and 3)."""
    with atomic(leaf.shard), cursor(leaf.shard) as cur:
        set_lock_timeout(cur, app_settings.archive_lock_timeout)
        _check_remote(cur, leaf)
        remote.lock_remote(cur, leaf.schema, leaf.table, "SHARE ROW EXCLUSIVE")
        yield cur


def drop_held(cur: Cursor, leaf: RemoteLeaf) -> None:
    """Step 3: the remote table dropped in the shard's transaction that held it."""
    remote.lock_remote(cur, leaf.schema, leaf.table, "ACCESS EXCLUSIVE")
    remote.drop_remote(cur, leaf.schema, leaf.table)
    logger.info("dropped %s", leaf)


def orphans(using: str = "default", shards: Iterable[str] | None = None) -> list[Orphan]:
    """Archived terms whose remote table is still on its shard (E039). A shard that does
    not answer is skipped (E030 reports it)."""
    if not app_settings.shards:
        return []
    wanted = set(app_settings.shards if shards is None else shards)
    with cursor(using) as cur:
        candidates = [c for c in remote.archived_sharded(cur) if c[4] in wanted]
    out: list[Orphan] = []
    for alias in dict.fromkeys(c[4] for c in candidates):
        try:
            schema = shard_schema(alias)
            with cursor(alias) as cur:
                have = remote.remote_tables(cur, schema)
        except DatabaseError as exc:
            logger.warning("shard %s: cannot list its tables: %s", alias, exc)
            continue
        for table, class_id, term_id, year, shard in candidates:
            if shard == alias and table in have:
                out.append(Orphan(table, class_id, term_id, year, RemoteLeaf(alias, schema, table)))
    return out


def finish(orphan: Orphan, using: str = "default") -> str:
    """Drop an archived term's remote table left on its shard, once verified against the
    archive; return what was done.

    Raises:
        ArchiveError: its marker is not the app's, or its rows differ from the archived
            ones (nothing is dropped).
    """
    leaf = orphan.leaf
    with cursor(using) as cur:
        cols = catalog.grade_columns(cur)
        year_table = sql_archive.year_table(cur, orphan.academic_year)
        archived = (
            chunks.checksum_group(cur, cols, year_table, orphan.class_id, orphan.term_id)
            if year_table is not None
            else (0, 0)
        )
    with atomic(leaf.shard), cursor(leaf.shard) as cur:
        set_lock_timeout(cur, app_settings.archive_lock_timeout)
        _check_remote(cur, leaf)
        remote.lock_remote(cur, leaf.schema, leaf.table, "ACCESS EXCLUSIVE")
        left = sql_archive.checksum_leaf(cur, cols, leaf.table, schema=leaf.schema)
        if left != archived:
            raise ArchiveError(
                f"{leaf} (class {orphan.class_id!r} term {orphan.term_id!r}, archived) holds "
                f"{left[0]} rows that differ from the archive's {archived[0]}: not dropped; "
                "compare them by hand"
            )
        remote.drop_remote(cur, leaf.schema, leaf.table)
    logger.info("dropped %s, left by an interrupted archive (%s)", leaf, ORPHAN_REMOTE)
    return f"dropped {leaf} (its term is archived, rows verified against the archive)"


def finish_all(using: str = "default", shards: Iterable[str] | None = None) -> list[str]:
    """:func:`finish` every orphan (archive and restore runs start with it); one that
    cannot be finished is logged and stays E039."""
    done: list[str] = []
    for orphan in orphans(using, shards):
        try:
            done.append(finish(orphan, using))
        except (ArchiveError, DatabaseError) as exc:
            logger.warning("%s: %s", ORPHAN_REMOTE, exc)
    return done


def findings(using: str = "default") -> list[Problem]:
    """E039, each fixable by :func:`finish`."""
    out: list[Problem] = []
    for orphan in orphans(using):
        out.append(
            Problem(
                ORPHAN_REMOTE,
                f"{orphan.leaf} is left from partition {orphan.table} of class "
                f"{orphan.class_id!r} term {orphan.term_id!r}, which is archived on the "
                "coordinator (an archive interrupted between the coordinator's commit and "
                "the shard's drop): no foreign table points at it",
                "manage.py check_partitions --fix (or the next archive_grades or "
                "restore_grades) drops it once its rows match the archive's",
                table=orphan.table,
                fix=_finisher(orphan, using),
            )
        )
    return out


def _finisher(orphan: Orphan, using: str) -> Callable[[], str]:
    def fix() -> str:
        return finish(orphan, using)

    return fix
