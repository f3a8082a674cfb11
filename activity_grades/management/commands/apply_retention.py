from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from activity_grades.core.exceptions import ExportError, RetentionError
from activity_grades.operations import retention

from ._confirm import human_bytes, review
from ._progress import Progress


class Command(BaseCommand):
    help = (
        "Drop archived grades older than the retention policy (whole academic years, from "
        "the archive only; live partitions are never touched)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--years",
            type=int,
            metavar="N",
            help="keep N academic years, current included (default: RETENTION_YEARS)",
        )
        parser.add_argument(
            "--export-to",
            metavar="DIR",
            help="first write each year to Parquet files in DIR/<year>/ and verify them "
            "(default: RETENTION_EXPORT_DIR; needs pyarrow)",
        )
        parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
        parser.add_argument(
            "--noinput", "--no-input", action="store_false", dest="interactive", help="do not ask"
        )
        parser.add_argument("--database", default="default")

    def handle(self, *args: Any, **options: Any) -> None:
        using = options["database"]
        try:
            plan = retention.plan(options["years"], using=using, export_to=options["export_to"])
        except RetentionError as exc:
            raise CommandError(str(exc)) from exc
        if not plan.items:
            self.stdout.write(
                f"Nothing to do. (keeping {plan.keep_years} academic years"
                + (f" from {plan.oldest_kept})" if plan.oldest_kept else ")")
            )
            return
        if not review(
            self,
            f"{'Would drop' if options['dry_run'] else 'Dropping'} {len(plan.items)} archive "
            f"tables older than {plan.oldest_kept}: {plan.rows} rows, {human_bytes(plan.bytes)}"
            + (f", each year exported to {plan.export_to} first" if plan.export_to else ""),
            (
                f"{item.table_name} ({item.academic_year}): {item.rows} rows, "
                f"{human_bytes(item.bytes)}"
                for item in plan.items
            ),
            dry_run=options["dry_run"],
            question=f"Permanently delete {plan.rows} archived grades?",
            noinput=not options["interactive"],
        ):
            return
        progress = Progress(
            self,
            "Dropping archive years",
            "tables",
            options["verbosity"],
            detail=lambda item, rows: f"{item.table_name} ({item.academic_year}): {rows} rows",
        )
        try:
            with progress:
                result = plan.apply(progress)
        except (RetentionError, ExportError) as exc:
            raise CommandError(f"{exc} (years dropped before it stay dropped)") from exc
        for exported in result.exported:
            self.stdout.write(
                f"  exported {exported.academic_year}: {exported.rows} grades, "
                f"{human_bytes(exported.file_bytes)} in {exported.directory} (verified)"
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Dropped {len(result.dropped)} archive tables, {result.rows} rows, freed "
                f"{human_bytes(result.bytes_freed)}, in {result.seconds:.2f} s."
            )
        )
