from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from activity_grades.core.exceptions import PartitioningError
from activity_grades.operations import create, regranulate

from ._progress import Progress


class Command(BaseCommand):
    help = (
        "Create the partition tables of activity_grades: by default every class with "
        "activities x the current term and the next ACTIVITY_GRADES['UPCOMING_TERMS']."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--class", dest="classes", action="append", metavar="ID", help="class id (repeatable)"
        )
        parser.add_argument(
            "--term", dest="terms", action="append", metavar="ID", help="term id (repeatable)"
        )
        parser.add_argument("--all-terms", action="store_true", help="every term of the LMS")
        parser.add_argument(
            "--upcoming",
            type=int,
            metavar="N",
            help="terms after the current one (default: setting)",
        )
        parser.add_argument(
            "--regranulate",
            metavar="TERM",
            help="move the term's grades to the granularity --to (default: the setting "
            "PARTITION_GRANULARITY), online, in verified batches; rerun to finish after a crash",
        )
        parser.add_argument(
            "--to", metavar="GRANULARITY", help="with --regranulate: 'month' or 'term'"
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=regranulate.BATCH_SIZE,
            metavar="N",
            help=f"with --regranulate: rows per transaction (default {regranulate.BATCH_SIZE})",
        )
        parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
        parser.add_argument("--database", default="default")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["terms"] and options["all_terms"]:
            raise CommandError("--term and --all-terms exclude each other")
        if options["upcoming"] is not None and options["upcoming"] < 0:
            raise CommandError("--upcoming must be 0 or more")
        verbosity = options["verbosity"]
        if options["regranulate"] is not None:
            self._regranulate(options)
            return
        if options["to"] is not None:
            raise CommandError("--to goes with --regranulate TERM")
        try:
            plan = create.plan(
                options["classes"],
                options["terms"],
                all_terms=options["all_terms"],
                upcoming=options["upcoming"],
                with_sql=options["dry_run"] and verbosity >= 2,
                using=options["database"],
            )
        except PartitioningError as exc:
            raise CommandError(str(exc)) from exc

        if plan.nothing_to_do:
            self.stdout.write(f"Nothing to do. ({len(plan.existing)} partitions already exist)")
            return
        if options["dry_run"]:
            self._print_plan(plan, verbosity)
            return
        progress = Progress(
            self,
            "Creating partitions",
            "partitions",
            verbosity,
            detail=lambda planned, _created: planned.table_name,
            minimum=100,
        )
        try:
            with progress:
                result = plan.apply(progress)
        except PartitioningError as exc:
            raise CommandError(str(exc)) from exc
        changed = (
            f"; {len(result.changed)} partitions given their term's new dates or year, "
            f"{result.moved} rows re-filed"
            if result.changed
            else ""
        )
        if result.relabelled:
            changed += f"; {result.relabelled} archived grades filed under their term's new year"
        self.stdout.write(
            self.style.SUCCESS(
                f"Created {len(result.created)} partitions, {result.existing} existing{changed}, "
                f"in {result.seconds:.2f} s."
            )
        )

    def _regranulate(self, options: dict[str, Any]) -> None:
        if options["classes"] or options["terms"] or options["all_terms"]:
            raise CommandError("--regranulate TERM takes no --class, --term or --all-terms")
        term_id = options["regranulate"]
        try:
            plan = regranulate.plan(
                term_id,
                options["to"],
                batch_size=options["batch_size"],
                using=options["database"],
            )
        except PartitioningError as exc:
            raise CommandError(str(exc)) from exc
        if plan.nothing_to_do:
            self.stdout.write(f"Nothing to do. (term {term_id!r} is already by {plan.to})")
            return
        self.stdout.write(f"Regranulate term {term_id!r} to {plan.to}, {len(plan.items)} tables:")
        for item in plan.items:
            extra = (
                f", {len(item.months_to_create)} month tables to create"
                if item.months_to_create
                else ""
            ) + (
                f", {len(item.months_to_drop)} month tables to drop" if item.months_to_drop else ""
            )
            self.stdout.write(
                f"  ~ {item.table_name}  class {item.class_id!r}: {item.granularity} -> "
                f"{plan.to}, {item.rows} rows to move{extra}"
            )
        if options["dry_run"]:
            self.stdout.write("Dry run: nothing was changed.")
            return
        progress = Progress(
            self,
            "Regranulating",
            "tables",
            options["verbosity"],
            detail=lambda item, _moved: item.table_name,
            minimum=100,
        )
        try:
            with progress:
                result = plan.apply(progress)
        except PartitioningError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Regranulated {result.tables} tables of term {term_id!r} to {plan.to}: "
                f"{result.moved} rows moved, {result.months_created} month tables created, "
                f"{result.months_dropped} dropped, in {result.seconds:.2f} s."
            )
        )

    def _print_plan(self, plan: create.CreatePlan, verbosity: int) -> None:
        if plan.term_changes and not plan.term_changes.empty:
            self.stdout.write(
                f"Would apply changed terms to {len(plan.term_changes.items)} partitions "
                "(new CHECK, rows re-filed, then validated) and "
                f"{len(plan.term_changes.archived)} archived terms (new academic year):"
            )
            for line in plan.term_changes.describe():
                self.stdout.write(f"  ~ {line}")
        self.stdout.write(f"Would create {len(plan.to_create)} partitions:")
        for p in plan.to_create:
            term = "(class table)" if p.term_id is None else f"term {p.term_id!r}"
            if p.month_starts_at is not None:
                term += f" month from {p.month_starts_at.isoformat()}"
            self.stdout.write(f"  + {p.table_name}  class {p.class_id!r} {term}")
            for statement in p.statements:
                self.stdout.write(f"      {statement};")
        self.stdout.write(f"{len(plan.existing)} already exist. Dry run: nothing was changed.")
