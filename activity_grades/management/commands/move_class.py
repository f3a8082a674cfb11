"""manage.py move_class CLASS --to SHARD|local [--dry-run] [--abort]: move a class's
partitions to another server, online, verified, resumable (docs/sharding.md)."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from activity_grades.core.exceptions import ActivityGradesError
from activity_grades.operations import move_class

EVERY_SECONDS = 2.0  # -v 1: at most one progress line this often


class Command(BaseCommand):
    help = (
        "Move a class's partitions to a shard of ACTIVITY_GRADES['SHARDS'] or back to this "
        "database ('local'). Grades stay readable and writable on the source while they are "
        "copied; writes wait during the short swap. Counts and checksums are compared before "
        "the source is dropped. Rerun to resume an interrupted move."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("class_id", help="the class to move")
        parser.add_argument("--to", dest="to", help="a shard alias, or 'local'")
        parser.add_argument("--dry-run", action="store_true", help="show the plan, change nothing")
        parser.add_argument(
            "--abort", action="store_true", help="undo an unfinished move that has not swapped"
        )
        parser.add_argument(
            "--batch-size", type=int, default=5000, help="rows per copied batch (default 5000)"
        )
        parser.add_argument("--database", default="default", help="the coordinator")

    def handle(self, *args: Any, **options: Any) -> None:
        class_id, using = options["class_id"], options["database"]
        try:
            if options["abort"]:
                self.stdout.write(move_class.abort(class_id, using))
                return
            if not options["to"]:
                raise CommandError("--to SHARD (or --to local) is required")
            if options["dry_run"]:
                self.stdout.write(f"Would move class {class_id} to {options['to']}:")
                for line in move_class.plan(class_id, options["to"], using):
                    self.stdout.write(f"  {line}")
                return
            result = move_class.move_class(
                class_id,
                options["to"],
                using=using,
                batch_size=options["batch_size"],
                progress=self._progress(options["verbosity"]),
            )
        except (ActivityGradesError, DatabaseError) as exc:
            raise CommandError(f"{exc} (rerun to resume)") from exc
        if result.copied_again:
            again = ", ".join(result.copied_again)
            self.stdout.write(
                self.style.WARNING(f"copied again whole after a checksum difference: {again}")
            )
        self.stdout.write(self.style.SUCCESS(f"{result.done} ({result.seconds:.1f} s)"))

    def _progress(self, verbosity: int) -> move_class.Progress:
        last = [0.0]

        def say(line: str) -> None:
            now = time.monotonic()
            if verbosity >= 2 or (verbosity == 1 and now - last[0] >= EVERY_SECONDS):
                last[0] = now
                self.stdout.write(line)

        return say
