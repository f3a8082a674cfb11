from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from activity_grades.core.exceptions import ArchiveError
from activity_grades.operations import compress

from ._confirm import review


class Command(BaseCommand):
    help = (
        "Convert grades archived one row per grade (before migration 0012) into compressed "
        "chunks, one (year, class, term) per verified transaction; resumable. "
        "--to rows converts back (needed before migrating back past 0012)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--to",
            choices=["chunks", "rows"],
            default="chunks",
            help="the format to convert into (default: chunks)",
        )
        parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
        parser.add_argument(
            "--noinput", "--no-input", action="store_false", dest="interactive", help="do not ask"
        )
        parser.add_argument("--database", default="default")

    def handle(self, *args: Any, **options: Any) -> None:
        to = options["to"]
        plan = compress.plan(to, using=options["database"])
        if not plan.items:
            self.stdout.write(f"Nothing to do. (every archived grade is in {to})")
            return
        if not review(
            self,
            f"{'Would convert' if options['dry_run'] else 'Converting'} {plan.rows} archived "
            f"grades in {len(plan.items)} (year, class, term) groups to {to}:",
            (
                f"{item.academic_year} class {item.class_id!r} term {item.term_id!r} "
                f"from {item.source_table}: {item.rows} grades"
                for item in plan.items
            ),
            dry_run=options["dry_run"],
            question=f"Convert {plan.rows} archived grades to {to}?",
            noinput=not options["interactive"],
        ):
            return

        def progress(done: int, total: int, item: compress.CompressItem, rows: int) -> None:
            if options["verbosity"] >= 1:
                self.stdout.write(
                    f"  [{done}/{total}] {item.academic_year} class {item.class_id!r} "
                    f"term {item.term_id!r}: {rows} grades"
                )

        try:
            result = plan.apply(progress)
        except ArchiveError as exc:
            raise CommandError(
                f"{exc} (groups converted before it stay converted; rerun to continue)"
            ) from exc
        dropped = f"; dropped {len(result.dropped)} emptied row tables" if result.dropped else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"Converted {result.rows} grades in {result.groups} groups to {to}"
                f"{dropped} in {result.seconds:.2f} s."
            )
        )
