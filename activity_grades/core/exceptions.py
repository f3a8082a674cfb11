"""One exception root for the app; each subclass says what failed.

Some subclasses also derive from the built-in or Django error that version 0.1 raised
in their place (``ValueError``, ``IntegrityError``), so existing ``except`` clauses
keep working.
"""

from __future__ import annotations

from django.db import IntegrityError

__all__ = [
    "ActivityGradesError",
    "ArchiveError",
    "ExportError",
    "ExportUnavailable",
    "ConversionError",
    "GradeConflict",
    "ActivityWithoutClass",
    "ClassMismatch",
    "GradeError",
    "InvalidTimestamp",
    "InvalidId",
    "LockTimeout",
    "NoUniqueKey",
    "MoveError",
    "PlacementError",
    "PartitioningError",
    "ReadOnlyError",
    "RetentionError",
    "SettingsError",
    "ShardError",
    "TermMismatch",
    "UnknownActivity",
    "UnknownColumn",
    "UnroutableQuery",
    "UniqueKeyError",
]


class ActivityGradesError(Exception):
    """Root of every error the app raises on purpose."""


class SettingsError(ActivityGradesError, ValueError):
    """A value in ``settings.ACTIVITY_GRADES`` is unknown, of the wrong type or impossible."""


class PartitioningError(ActivityGradesError, ValueError):
    """A request names classes or terms the LMS does not have."""


class ArchiveError(ActivityGradesError, ValueError):
    """An archive or restore request that cannot be carried out; nothing of it changed."""


class ConversionError(ActivityGradesError, ValueError):
    """The LMS's table cannot be converted (or converted back) as it stands; says why."""


class RetentionError(ActivityGradesError, ValueError):
    """No retention policy, or one that makes no sense."""


class ExportError(ArchiveError):
    """An export of archived grades to files, or its import, failed its checks."""


class ExportUnavailable(ExportError):
    """The optional dependency for Parquet files (pyarrow) is not installed."""


class LockTimeout(ArchiveError):
    """A lock was not granted within the lock timeout; the transaction rolled back."""


class GradeError(ActivityGradesError):
    """A grade that cannot be written as asked."""


class UnknownActivity(GradeError, IntegrityError):
    """The activity does not exist or has no class, so the grade has no partition."""


class GradeConflict(GradeError, IntegrityError):
    """A write that kept losing races, or found its grade in a partition that is not live."""


class ActivityWithoutClass(GradeError, IntegrityError):
    """The activity exists but belongs to no class, so the grade has no partition."""


class ClassMismatch(GradeError, IntegrityError):
    """A ``class_id`` given for a grade that is not its activity's class (nothing stored)."""


class TermMismatch(GradeError, IntegrityError):
    """A ``term_id`` given for a grade that is not the term of its ``created_at``."""


class InvalidTimestamp(GradeError, ValueError):
    """A timestamp that could not be stored and read back: not an aware datetime,
    infinite, before year 1 or after year 9999 in UTC."""


class NoUniqueKey(GradeError):
    """A call that finds a grade by (activity, student) while ``UNIQUE_KEY`` is None."""


class UniqueKeyError(ActivityGradesError, ValueError):
    """The database cannot follow ``UNIQUE_KEY`` as asked (duplicates); nothing changed."""


class InvalidId(GradeError, TypeError):
    """An id that is not a str, an int or a UUID (the LMS's id types)."""


class ReadOnlyError(GradeError, TypeError):
    """A write to something the app keeps read-only (archived grades, routing columns)."""


class UnknownColumn(GradeError, TypeError):
    """A column name that ``activity_grades`` does not have."""


class UnroutableQuery(ActivityGradesError):
    """A query on ActivityGrade pins no partition and would plan and lock all of them."""


class ShardError(ActivityGradesError):
    """A shard cannot be set up or reached as asked; says which and what to do."""


class PlacementError(ShardError, ValueError):
    """A class cannot be placed as asked (unknown shard, or it already has partitions)."""


class MoveError(ShardError, ValueError):
    """A class cannot be moved as asked, or its copy did not verify; the source is kept."""
