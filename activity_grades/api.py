"""The public API of activity_grades: what the README documents, importable from here.

``from activity_grades import ActivityGradeService`` works too (the package re-exports
these names lazily, so importing the package does not load Django models early).

Operations follow one vocabulary: ``<operation>.plan(...)`` reads and returns a plan,
``plan.apply(progress=None)`` carries it out and returns a result::

    from activity_grades import archive
    plan = archive.plan(before_academic_year="2024-2025")
    result = plan.apply()
"""

from __future__ import annotations

from . import placement
from .core.constants import Status
from .core.exceptions import (
    ActivityGradesError,
    ActivityWithoutClass,
    ArchiveError,
    ClassMismatch,
    ConversionError,
    ExportError,
    ExportUnavailable,
    GradeConflict,
    GradeError,
    InvalidId,
    InvalidTimestamp,
    LockTimeout,
    MoveError,
    NoUniqueKey,
    PartitioningError,
    PlacementError,
    ReadOnlyError,
    RetentionError,
    SettingsError,
    ShardError,
    TermMismatch,
    UniqueKeyError,
    UnknownActivity,
    UnknownColumn,
    UnroutableQuery,
)
from .core.settings import app_settings
from .core.signals import (
    maintenance_finished,
    partition_created,
    retention_dropped_year,
    term_archived,
    term_restored,
)
from .db.lms import Term
from .db.registry import invalidate_cache, partition_table, table_of_grade, tables_of_student
from .models import (
    ActivityGrade,
    ActivityGradeManager,
    ActivityGradeQuerySet,
    ArchivedActivityGrade,
    Partition,
)
from .operations import (
    archive,
    compress,
    convert,
    create,
    maintenance,
    regranulate,
    repair,
    restore,
    retention,
    shards,
    unique_key,
)
from .operations.archive import ArchiveItem, ArchivePlan, ArchiveResult
from .operations.base import Plan, Progress, Result
from .operations.compress import CompressItem, CompressPlan, CompressResult
from .operations.convert import ConversionPlan, ConversionResult
from .operations.create import CreatePlan, CreateResult, PlannedPartition
from .operations.maintenance import MaintenancePlan, MaintenanceResult
from .operations.regranulate import RegranulateItem, RegranulatePlan, RegranulateResult
from .operations.repair import FixResult, Problem, RepairPlan
from .operations.restore import RestoreItem, RestorePlan, RestoreResult
from .operations.retention import RetentionItem, RetentionPlan, RetentionResult
from .operations.shards import SetupPlan, SetupResult, SetupStep
from .operations.unique_key import KeyItem, UniqueKeyPlan, UniqueKeyResult
from .reporting.archive import ArchiveYear, archive_years
from .reporting.metrics import collect as collect_metrics
from .reporting.stats import Overview, PartitionStats, overview
from .service import (
    ActivityGradeService,
    ActivityStats,
    IngestResult,
    StudentHistory,
    student_history,
)

__all__ = [
    # models and querysets
    "ActivityGrade",
    "ActivityGradeManager",
    "ActivityGradeQuerySet",
    "ArchivedActivityGrade",
    "Partition",
    "Status",
    # the service
    "ActivityGradeService",
    "ActivityStats",
    "IngestResult",
    "StudentHistory",
    "student_history",
    # registry lookups
    "invalidate_cache",
    "partition_table",
    "table_of_grade",
    "tables_of_student",
    "Term",
    # where a class lives (docs/sharding.md)
    "placement",
    # operations: <module>.plan(...) -> Plan; Plan.apply(progress) -> Result
    "archive",
    "compress",
    "convert",
    "create",
    "maintenance",
    "repair",
    "restore",
    "retention",
    "shards",
    "regranulate",
    "unique_key",
    "Plan",
    "Progress",
    "Result",
    "ArchiveItem",
    "ArchivePlan",
    "CompressItem",
    "CompressPlan",
    "CompressResult",
    "ConversionPlan",
    "ConversionResult",
    "ArchiveResult",
    "CreatePlan",
    "CreateResult",
    "PlannedPartition",
    "MaintenancePlan",
    "MaintenanceResult",
    "FixResult",
    "Problem",
    "RepairPlan",
    "RestoreItem",
    "RestorePlan",
    "RestoreResult",
    "RetentionItem",
    "RetentionPlan",
    "RegranulateItem",
    "RegranulatePlan",
    "RegranulateResult",
    "RetentionResult",
    "SetupPlan",
    "SetupResult",
    "SetupStep",
    "KeyItem",
    "UniqueKeyPlan",
    "UniqueKeyResult",
    # reporting
    "ArchiveYear",
    "archive_years",
    "Overview",
    "PartitionStats",
    "overview",
    "collect_metrics",
    # signals (sent after commit)
    "maintenance_finished",
    "partition_created",
    "retention_dropped_year",
    "term_archived",
    "term_restored",
    # settings and errors
    "app_settings",
    "ActivityGradesError",
    "ActivityWithoutClass",
    "ArchiveError",
    "ClassMismatch",
    "ExportError",
    "ExportUnavailable",
    "ConversionError",
    "GradeConflict",
    "GradeError",
    "InvalidId",
    "InvalidTimestamp",
    "LockTimeout",
    "NoUniqueKey",
    "PartitioningError",
    "MoveError",
    "PlacementError",
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
