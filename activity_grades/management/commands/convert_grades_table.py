from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from activity_grades.core.exceptions import ConversionError, LockTimeout
from activity_grades.operations import convert

from ._confirm import review
from ._progress import Progress


class Command(BaseCommand):
    help = (
        "Convert the LMS's own activity_grades table into the partition tree while the LMS "
        "keeps using it (--to partitioned), or back into one plain table (--to plain). "
        "Batches, each verified; a rerun continues where a crash or kill stopped it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--to", required=True, choices=convert.DIRECTIONS)
        parser.add_argument(
            "--batch-size", type=int, default=5000, help="rows per transaction (default 5000)"
        )
        parser.add_argument(
            "--lock-timeout", help="lock_timeout of each step (default: the LOCK_TIMEOUT setting)"
        )
        parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
        parser.add_argument(
            "--noinput", "--no-input", action="store_false", dest="interactive", help="do not ask"
        )
        parser.add_argument("--database", default="default")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            plan = convert.plan(
                options["to"],
                batch_size=options["batch_size"],
                using=options["database"],
                lock_timeout=options["lock_timeout"],
            )
        except ConversionError as exc:
            raise CommandError(str(exc)) from exc
        if plan.done:
            self.stdout.write(f"Nothing to do: {plan.table} is already {options['to']}.")
            return
        for warning in plan.warnings:
            self.stdout.write(self.style.WARNING(f"warning: {warning}"))
        if plan.problems:
            raise CommandError(
                f"cannot convert {plan.table} (nothing was changed):\n  - "
                + "\n  - ".join(plan.problems)
            )
        missing = sum(1 for g in plan.items if g.partition is None)
        verb = "Would convert" if options["dry_run"] else "Converting"
        if not review(
            self,
            f"{verb} {plan.table} to {options['to']}, from step {plan.step!r}: {plan.rows} rows "
            f"in {len(plan.items)} (class, term) groups, {missing} partitions to create:",
            (
                f"class {g.class_id!r} term {g.term_id!r}: {g.rows} rows -> "
                + (g.partition or "(new partition)")
                for g in plan.items
            ),
            dry_run=options["dry_run"],
            question=f"Convert {plan.rows} grades to {options['to']} while the LMS runs?",
            noinput=not options["interactive"],
        ):
            return
        moved = Progress(self, "Moving rows", "rows", min(options["verbosity"], 1))

        def progress(done: int, total: int, step: str, rows: int) -> None:
            if step == "move":
                moved(done, total)

        try:
            with moved:
                result = plan.apply(progress)
        except (ConversionError, LockTimeout) as exc:
            raise CommandError(
                f"{exc} (batches done before it stay done; rerun to continue)"
            ) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Converted to {options['to']}: {result.moved} rows moved in {result.batches} "
                f"verified batches ({result.passes} passes, {result.lock_retries} lock retries) "
                f"in {result.seconds:.1f} s."
            )
        )
