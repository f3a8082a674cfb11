"""manage.py apply_unique_key: make the database follow ACTIVITY_GRADES['UNIQUE_KEY']."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from activity_grades.core.exceptions import ActivityGradesError, UniqueKeyError
from activity_grades.operations import unique_key

from ._confirm import review
from ._progress import Progress


class Command(BaseCommand):
    help = (
        "Switch the uniqueness key (activity_id, student_id) of the key table, the parent "
        "and every partition to what ACTIVITY_GRADES['UNIQUE_KEY'] says, one short "
        "transaction per table. Turning it on first checks the tree for duplicates."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
        parser.add_argument(
            "--noinput", "--no-input", action="store_false", dest="interactive", help="do not ask"
        )
        parser.add_argument("--database", default="default")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            plan = unique_key.plan(using=options["database"])
        except ActivityGradesError as exc:
            raise CommandError(str(exc)) from exc
        mode = "on: one grade per (activity, student)" if plan.on else "off: several attempts"
        if not plan.items:
            self.stdout.write(f"Nothing to do. (the uniqueness key is {mode})")
            return
        if plan.refused:
            raise CommandError(plan.refused)
        verb = "Would switch" if options["dry_run"] else "Switching"
        if not review(
            self,
            f"{verb} {len(plan.items)} table(s) to the uniqueness key {mode}:",
            (f"{item.kind} {item.table}: {item.change}" for item in plan.items),
            dry_run=options["dry_run"],
            question=f"Switch {len(plan.items)} table(s)?",
            noinput=not options["interactive"],
        ):
            return
        progress = Progress(
            self, "Switching tables", "tables", options["verbosity"], detail=self._detail
        )
        try:
            with progress:
                result = plan.apply(progress)
        except UniqueKeyError as exc:  # from the key table, the first table: nothing changed
            raise CommandError(str(exc)) from exc
        except ActivityGradesError as exc:
            raise CommandError(f"{exc} (tables switched before it stay switched)") from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Switched {len(result.switched)} table(s) in {result.seconds:.2f} s; "
                f"the uniqueness key is {mode}."
            )
        )

    @staticmethod
    def _detail(item: unique_key.KeyItem, statements: list[str]) -> str:
        return "\n".join([f"{item.table}: {item.change}", *(f"      {t}" for t in statements)])
