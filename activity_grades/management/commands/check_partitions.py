"""manage.py check_partitions [--fix]: health of the partition tree."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from activity_grades import replicas
from activity_grades.operations import repair
from activity_grades.reporting import locks


class Command(BaseCommand):
    help = (
        "Check the activity_grades partition tree (routing trigger, empty parent, indexes, "
        "CHECKs, triggers, markers, upcoming partitions, constraint_exclusion). "
        "Exits non-zero when problems remain."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--fix",
            action="store_true",
            help="repair what is safe: missing indexes, missing upcoming partitions",
        )
        parser.add_argument("--database", default="default")

    def handle(self, *args: Any, **options: Any) -> None:
        using = options["database"]
        found = repair.plan(using)
        if found.items and options["fix"]:
            result = found.apply()
            for line in result.fixed:
                self.stdout.write(self.style.SUCCESS(f"fixed: {line}"))
            for line in result.failed:
                self.stderr.write(self.style.ERROR(f"could not fix: {line}"))
            found = repair.plan(using)
        problems = found.problems
        room = locks.headroom(using)
        lock_line = f"Lock headroom: {room.sentence()}."
        if room.low:
            self.stdout.write(
                self.style.WARNING(
                    f"{lock_line} Fewer than {locks.CONCURRENT}: keep queries off the parent "
                    "(filters that name partitions; ROUTING_PARTITION_LIMIT), or raise "
                    "max_locks_per_transaction."
                )
            )
        else:
            self.stdout.write(lock_line)
        for replica in replicas.replica_states():
            line = f"Read {replica.sentence()}."
            self.stdout.write(line if replica.ok else self.style.WARNING(line))
        for p in problems:
            self.stdout.write(self.style.ERROR(f"{p.id} {p.message}"))
            if p.hint:
                self.stdout.write(f"    hint: {p.hint}")
        if problems:
            fixable = sum(p.fixable for p in problems)
            tail = f"; {fixable} can be fixed with --fix" if fixable and not options["fix"] else ""
            raise CommandError(f"{len(problems)} problem(s) in the partition tree{tail}")
        self.stdout.write(self.style.SUCCESS("Partition tree OK."))
