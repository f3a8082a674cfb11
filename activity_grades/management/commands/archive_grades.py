from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from activity_grades.core.exceptions import ArchiveError
from activity_grades.operations import archive

from ._confirm import human_bytes, review
from ._progress import Progress


class Command(BaseCommand):
    help = (
        "Move the grades of ended terms into archived_activity_grades, one (class, term) "
        "partition per transaction (verified copy, then the live partition is dropped)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--term", dest="terms", action="append", metavar="ID", help="term id (repeatable)"
        )
        parser.add_argument(
            "--before-academic-year",
            metavar="YEAR",
            help="every term whose academic year sorts before YEAR (e.g. 2024-2025)",
        )
        parser.add_argument(
            "--force", action="store_true", help="allow the current or a future term"
        )
        parser.add_argument(
            "--keep-detached",
            action="store_true",
            default=None,
            help="keep each archived partition as a detached table (default: setting; "
            "refused for a class on a shard)",
        )
        parser.add_argument(
            "--no-keep-detached",
            action="store_false",
            dest="keep_detached",
            help="drop each archived partition whatever ARCHIVE_KEEP_DETACHED says",
        )
        parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
        parser.add_argument(
            "--noinput", "--no-input", action="store_false", dest="interactive", help="do not ask"
        )
        parser.add_argument("--database", default="default")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["terms"] and not options["before_academic_year"]:
            raise CommandError("name what to archive: --term ID and/or --before-academic-year YEAR")
        using = options["database"]
        try:
            plan = archive.plan(
                options["terms"],
                options["before_academic_year"],
                force=options["force"],
                keep_detached=options["keep_detached"],
                using=using,
            )
        except ArchiveError as exc:
            raise CommandError(str(exc)) from exc
        for orphan in plan.leftovers:
            self.stdout.write(
                f"{'Would drop' if options['dry_run'] else 'Dropping'} {orphan.leaf}, left by "
                f"an interrupted archive of class {orphan.class_id!r} term {orphan.term_id!r} "
                "(activity_grades.E039), once its rows match the archive's"
            )
        if not plan.items:
            if plan.leftovers and not options["dry_run"]:
                result = plan.apply()
                self.stdout.write(f"Finished {len(result.finished)} interrupted archives.")
            self.stdout.write("Nothing to do. (no live partition of those terms)")
            return
        verb = "detach" if plan.keep_detached else "drop"
        if not review(
            self,
            f"{'Would archive' if options['dry_run'] else 'Archiving'} {len(plan.items)} "
            f"partitions, {plan.rows} rows, {human_bytes(plan.bytes)} (then {verb} them):",
            (self._line(item) for item in plan.items),
            dry_run=options["dry_run"],
            question=f"Archive {plan.rows} grades and {verb} {len(plan.items)} partitions?",
            noinput=not options["interactive"],
        ):
            return
        progress = Progress(
            self, "Archiving", "partitions", options["verbosity"], detail=self._detail
        )
        try:
            with progress:
                result = plan.apply(progress)
        except ArchiveError as exc:
            raise CommandError(f"{exc} (partitions archived before it stay archived)") from exc
        skipped = f", {len(result.skipped)} already archived" if result.skipped else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"Archived {result.rows} rows from {len(result.archived)} partitions{skipped}, "
                f"freed {human_bytes(result.bytes_freed)}, in {result.seconds:.2f} s."
            )
        )

    @staticmethod
    def _line(item: archive.ArchiveItem) -> str:
        line = (
            f"{item.table_name}  class {item.class_id!r} term {item.term_id!r} "
            f"({item.academic_year}): {item.rows} rows, {human_bytes(item.bytes)}"
        )
        if item.remote is not None:
            line += (
                f"; on shard {item.remote.shard}: read through the foreign table, then DROP "
                f"FOREIGN TABLE here and DROP TABLE {item.remote.schema}.{item.remote.table} "
                f"on shard {item.remote.shard}"
            )
        return line

    @staticmethod
    def _detail(item: archive.ArchiveItem, rows: int | None) -> str:
        return f"{item.table_name}: {'already archived' if rows is None else f'{rows} rows'}"
