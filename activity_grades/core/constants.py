"""Names the app gives its database objects, and the values it stores in them.

Every other module takes these from here, so a marker, a table name or a status is
spelled once. The SQL files (``activity_grades/sql``) use the same literals: they are
frozen released text and cannot import them.
"""

from __future__ import annotations

import enum

__all__ = [
    "ARCHIVE_MARKER",
    "ARCHIVE_PARENT",
    "ARCHIVE_YEARS_TABLE",
    "DETACHED_MARKER",
    "KEY_TABLE",
    "LOGGER_NAME",
    "MAINTENANCE_JOB",
    "MAINTENANCE_LOCK_KEY",
    "PARENT",
    "PARENT_CHECK",
    "PARTITION_MARKER",
    "PARTITION_TRIGGERS",
    "REGISTRY_TABLE",
    "ROUTE_TRIGGER",
    "Status",
]

LOGGER_NAME = "activity_grades"

# Tables of migration 0001/0003.
PARENT = "activity_grades"
KEY_TABLE = "activity_grades_key"
REGISTRY_TABLE = "activity_grades_partition"
ARCHIVE_PARENT = "archived_activity_grades"
ARCHIVE_YEARS_TABLE = "activity_grades_archive_year"

# Ownership markers (COMMENT ON TABLE): the app only drops or detaches what carries one.
PARTITION_MARKER = "activity_grades:partition"
DETACHED_MARKER = "activity_grades:detached"
ARCHIVE_MARKER = "activity_grades:archive"

# The parent's routing trigger and its "holds no rows" CHECK.
ROUTE_TRIGGER = "activity_grades_route"
PARENT_CHECK = "activity_grades_parent_holds_no_rows"
# The triggers every partition carries (activity_grades_partition_ddl creates them).
PARTITION_TRIGGERS = (
    "activity_grades_keys_insert",
    "activity_grades_keys_delete",
    "activity_grades_keys_update",
    "activity_grades_move",
    "activity_grades_no_truncate",
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
