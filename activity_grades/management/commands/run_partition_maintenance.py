from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from activity_grades.operations import maintenance


class Command(BaseCommand):
    help = (
        "Periodic maintenance for cron/systemd/Celery beat: create partitions, archive past "
        "academic years, apply retention, ANALYZE new partitions (steps set by "
        "ACTIVITY_GRADES['MAINTENANCE_*']). One run at a time across machines."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default="default")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = maintenance.run(using=options["database"])
        except Exception as exc:
            raise CommandError(f"maintenance failed: {type(exc).__name__}: {exc}") from exc
        if not result.ran:
            self.stdout.write("Another run_partition_maintenance is running; nothing done.")
            return
        skipped = f"; skipped: {', '.join(result.skipped_steps)}" if result.skipped_steps else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"Maintenance done: created {len(result.created)} partitions, archived "
                f"{len(result.archived)} ({result.archived_rows} rows), retention dropped "
                f"{len(result.retention_dropped)} archive tables ({result.retention_rows} rows), "
                f"analyzed {len(result.analyzed)}{skipped}, in {result.seconds:.2f} s."
            )
        )
