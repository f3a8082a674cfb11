"""manage.py check_partitions [--fix]: health of the partition tree."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from activity_grades import replicas
from activity_grades.operations import repair
from activity_grades.reporting import locks


class Command(BaseCommand):
    help = (
        "Check the activity_grades partition tree (routing trigger, empty parent, indexes, "
        "CHECKs, triggers, markers, registry, inheritance, terms, upcoming partitions, "
        "constraint_exclusion; with --keys the key index against the stored rows). "
        "Exits non-zero when problems remain."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--fix",
            action="store_true",
            help="repair what is safe (each finding says whether --fix repairs it)",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="with --fix: list what would be repaired, change nothing",
        )
        parser.add_argument(
            "--keys",
            action="store_true",
            help="also compare the key index with the stored rows (reads every grade once, "
            "in batches: a nightly job)",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=repair.KEY_BATCH,
            help=f"rows per statement of --keys (default {repair.KEY_BATCH})",
        )
        parser.add_argument("--database", default="default")

    def handle(self, *args: Any, **options: Any) -> None:
        using = options["database"]
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        clock = time.monotonic()
        found = repair.plan(using, keys=options["keys"], batch=options["batch_size"])
        if options["keys"]:
            self.stdout.write(f"Key index compared in {time.monotonic() - clock:.1f} s.")
        if found.fixable and options["fix"] and options["dry_run"]:
            for p in found.fixable:
                self.stdout.write(f"would fix: {p.id} {p.message}")
        elif found.items and options["fix"]:
            result = found.apply()
            for line in result.fixed:
                self.stdout.write(self.style.SUCCESS(f"fixed: {line}"))
            for line in result.failed:
                self.stderr.write(self.style.ERROR(f"could not fix: {line}"))
            found = repair.plan(using, keys=options["keys"], batch=options["batch_size"])
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
