"""manage.py setup_shards [--dry-run]: the postgres_fdw servers, mappings and shard parents."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from activity_grades.core.exceptions import ActivityGradesError
from activity_grades.core.settings import app_settings
from activity_grades.operations import shards


class Command(BaseCommand):
    help = (
        "Set up the shards of ACTIVITY_GRADES['SHARDS'] (docs/sharding.md): on this database "
        "(the coordinator) the postgres_fdw extension, a foreign server and a user mapping "
        "per shard from its DATABASES entry; on each shard an empty activity_grades parent. "
        "Idempotent: a rerun changes nothing, changed settings alter the server's options."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="print the statements (passwords masked), change nothing",
        )
        parser.add_argument(
            "--shard", action="append", dest="shards", help="only this alias (repeatable)"
        )
        parser.add_argument("--database", default="default", help="the coordinator")

    def handle(self, *args: Any, **options: Any) -> None:
        if not app_settings.shards:
            self.stdout.write("Nothing to do: ACTIVITY_GRADES['SHARDS'] is empty.")
            return
        try:
            plan = shards.plan(options["database"], options["shards"])
        except ActivityGradesError as exc:
            raise CommandError(str(exc)) from exc
        dry_run = options["dry_run"]
        if plan.steps:
            verb = "Would run" if dry_run else "Running"
            self.stdout.write(f"{verb} {len(plan.steps)} step(s):")
            for step in plan.steps:
                self.stdout.write(f"  {step.where}: {step.what}")
                for statement in step.statements:
                    self.stdout.write(f"      {statement.text};")
        if plan.steps and not dry_run:
            try:
                result = plan.apply()
            except ActivityGradesError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(
                self.style.SUCCESS(f"Ran {len(result.done)} step(s) in {result.seconds:.2f} s.")
            )
        for blocker in plan.blockers:
            self.stdout.write(self.style.ERROR(f"{blocker.code} {blocker.problem}"))
            self.stdout.write(f"    hint: {blocker.hint}")
        if plan.blockers:
            raise CommandError(f"{len(plan.blockers)} problem(s) setup_shards cannot fix itself")
        if not plan.steps:
            self.stdout.write(f"Nothing to do. ({len(app_settings.shards)} shard(s) set up)")
