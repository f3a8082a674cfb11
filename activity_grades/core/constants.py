"""Names the app gives its database objects, and the values it stores in them.

Every other module takes these from here, so a marker, a table name or a status is
spelled once. The SQL files (``activity_grades/sql``) use the same literals: they are
frozen released text and cannot import them.
"""

from __future__ import annotations

import enum

__all__ = [
    "APP_LABEL",
    "ARCHIVE_MARKER",
    "ARCHIVE_CHUNK_PARENT",
    "ARCHIVE_PARENT",
    "ARCHIVE_ROWS_PARENT",
    "ARCHIVE_ROWS_YEARS_TABLE",
    "ARCHIVE_VIEW_MARKER",
    "ARCHIVE_YEARS_TABLE",
    "CHUNK_GROUP_COLUMNS",
    "CONVERSION_MOVED_TABLE",
    "CONVERSION_TABLE",
    "DETACHED_MARKER",
    "KEY_TABLE",
    "LEGACY_CLASS",
    "LEGACY_MARKER",
    "LEGACY_TABLE",
    "Granularity",
    "LOGGER_NAME",
    "MAINTENANCE_JOB",
    "MAINTENANCE_LOCK_KEY",
    "MONTH_REGISTRY_TABLE",
    "PARENT",
    "PARENT_CHECK",
    "PARTITION_MARKER",
    "PARTITION_TRIGGERS",
    "PLACEMENT_TABLE",
    "MOVE_LOG_TABLE",
    "MOVE_STATE_TABLE",
    "REGISTRY_TABLE",
    "ROUTE_LEGACY_TRIGGER",
    "ROUTE_TRIGGER",
    "SHARD_MARKER",
    "SHARD_PARENT_MARKER",
    "STAGING_SCHEMA",
    "Status",
]

LOGGER_NAME = "activity_grades"
# The Django app label of the app's models (apps.py names the app the same).
APP_LABEL = "activity_grades"

# Tables of migration 0001/0003.
PARENT = "activity_grades"
KEY_TABLE = "activity_grades_key"
REGISTRY_TABLE = "activity_grades_partition"
# Migration 0015: the registry of month tables (children of a term's table).
MONTH_REGISTRY_TABLE = "activity_grades_month"
# Migration 0012: the compressed archive. ARCHIVE_PARENT is a view of every archived
# grade (both formats); the chunks are the format archive_grades writes, one table per
# academic year registered in ARCHIVE_YEARS_TABLE; the row-per-grade archive of
# migration 0003 keeps its rows under the _rows names until compress_archive converts them.
ARCHIVE_PARENT = "archived_activity_grades"
ARCHIVE_CHUNK_PARENT = "archived_activity_grades_chunk"
ARCHIVE_YEARS_TABLE = "activity_grades_archive_year"
ARCHIVE_ROWS_PARENT = "archived_activity_grades_rows"
ARCHIVE_ROWS_YEARS_TABLE = "activity_grades_archive_rows_year"
# Grade columns a chunk stores once (every grade of a chunk has the same values).
CHUNK_GROUP_COLUMNS = ("class_id", "term_id")

# Migration 0008: the conversion of an LMS's own table (manage.py convert_grades_table).
CONVERSION_TABLE = "activity_grades_conversion"
CONVERSION_MOVED_TABLE = "activity_grades_conversion_moved"
# Where migrate creates the app's objects while the LMS's own activity_grades table
# holds the name (activity_grades/sql/__init__.py spells it too: migrations import
# nothing live). The conversion moves them next to the LMS's table.
STAGING_SCHEMA = "activity_grades_staging"
# The LMS's table while a conversion drains it, as a child of the parent; its grades'
# rows in the key index carry LEGACY_CLASS (no real class id starts with \x01).
LEGACY_TABLE = "activity_grades_legacy"
LEGACY_CLASS = "\x01legacy"

# Migration 0014: where each class lives (issue 16, docs/sharding.md), decided once.
PLACEMENT_TABLE = "activity_grades_placement"
MOVE_STATE_TABLE = "activity_grades_move_state"  # migration 0018: move_class
MOVE_LOG_TABLE = "activity_grades_move_log"

# Ownership markers (COMMENT ON TABLE): the app only drops or detaches what carries one.
PARTITION_MARKER = "activity_grades:partition"
DETACHED_MARKER = "activity_grades:detached"
ARCHIVE_MARKER = "activity_grades:archive"
ARCHIVE_VIEW_MARKER = "activity_grades:archive-view"  # the view archived_activity_grades
LEGACY_MARKER = "activity_grades:legacy"
# COMMENT ON SERVER of the foreign servers setup_shards creates on the coordinator, and
# COMMENT ON TABLE of the empty parent it creates on each shard.
SHARD_MARKER = "activity_grades:shard"
SHARD_PARENT_MARKER = "activity_grades:shard-parent"

# The parent's routing trigger and its "holds no rows" CHECK.
ROUTE_TRIGGER = "activity_grades_route"
# Replaces it while a conversion to a plain table runs: new grades go to that table.
ROUTE_LEGACY_TRIGGER = "activity_grades_route_legacy"
PARENT_CHECK = "activity_grades_parent_holds_no_rows"
# The triggers every partition carries (activity_grades_partition_ddl creates them).
PARTITION_TRIGGERS = (
    "activity_grades_keys_insert",
    "activity_grades_keys_delete",
    "activity_grades_keys_update",
    "activity_grades_move",
    "activity_grades_no_truncate",
    "activity_grades_readable",  # migration 0013
)

# run_partition_maintenance: its row in the runs table, and its session advisory lock
# (pg_try_advisory_lock key: the ASCII bytes of "ag_maint" as a bigint).
MAINTENANCE_JOB = "run_partition_maintenance"
MAINTENANCE_LOCK_KEY = 0x61675F6D61696E74


class Status(str, enum.Enum):
    """``activity_grades_partition.status``: where a registered partition's rows are."""

    LIVE = "live"  # a table in the tree
    DETACHED = "detached"  # archived; the table is kept outside the tree
    ARCHIVED = "archived"  # archived; the table is dropped

    def __str__(self) -> str:
        return self.value


class Granularity(str, enum.Enum):
    """``activity_grades_partition.granularity`` of a term's row: where its grades live."""

    TERM = "term"  # in the term table itself (the leaf)
    MONTH = "month"  # in month tables, children of the term table (activity_grades_month)

    def __str__(self) -> str:
        return self.value
