from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from activity_grades.core.exceptions import ArchiveError
from activity_grades.operations import export, restore

from ._confirm import review
from ._progress import Progress


class Command(BaseCommand):
    help = (
        "Bring archived grades of a term back into live partitions, one (class, term) per "
        "transaction (verified copy, then removed from the archive)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--term",
            dest="terms",
            action="append",
            metavar="ID",
            help="term id (repeatable)",
        )
        parser.add_argument(
            "--class", dest="classes", action="append", metavar="ID", help="only this class"
        )
        parser.add_argument(
            "--from-file",
            metavar="PATH",
            help="bring a year exported by apply_retention --export-to (its folder or "
            "manifest.json) back into the archive (needs pyarrow)",
        )
        parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
        parser.add_argument(
            "--noinput", "--no-input", action="store_false", dest="interactive", help="do not ask"
        )
        parser.add_argument("--database", default="default")

    def handle(self, *args: Any, **options: Any) -> None:
        using = options["database"]
        if options["from_file"]:
            self._from_file(Path(options["from_file"]), options)
            return
        if not options["terms"]:
            raise CommandError("name a term (--term ID) or an export (--from-file PATH)")
        try:
            plan = restore.plan(options["terms"], options["classes"], using=using)
        except ArchiveError as exc:
            raise CommandError(str(exc)) from exc
        if not plan.items:
            self.stdout.write("Nothing to do. (no archived grades for that term/class)")
            return
        if not review(
            self,
            f"{'Would restore' if options['dry_run'] else 'Restoring'} {plan.rows} rows "
            f"in {len(plan.items)} (class, term) groups:",
            (
                f"class {item.class_id!r} term {item.term_id!r} from {item.archive_table}: "
                f"{item.rows} rows"
                + (
                    f"; on shard {item.shard}: its partition made there again "
                    "(create_partitions' steps), the rows written through its foreign table"
                    if item.shard
                    else ""
                )
                for item in plan.items
            ),
            dry_run=options["dry_run"],
            question=f"Restore {plan.rows} grades?",
            noinput=not options["interactive"],
        ):
            return

        def detail(item: restore.RestoreItem, outcome: tuple[str, int]) -> str:
            return f"class {item.class_id!r}: {outcome[1]} rows into {outcome[0]}"

        progress = Progress(self, "Restoring", "groups", options["verbosity"], detail=detail)
        try:
            with progress:
                result = plan.apply(progress)
        except ArchiveError as exc:
            raise CommandError(f"{exc} (groups restored before it stay restored)") from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored {result.rows} rows into {len(result.restored)} partitions "
                f"in {result.seconds:.2f} s."
            )
        )

    def _from_file(self, path: Path, options: dict[str, Any]) -> None:
        try:
            manifest = export.read_manifest(path)
            if not review(
                self,
                f"{'Would bring' if options['dry_run'] else 'Bringing'} {manifest.rows} grades "
                f"of {manifest.academic_year} back into the archive from {manifest.directory}:",
                [f"{manifest.file}: {manifest.rows} grades, sha256 {manifest.sha256[:16]}..."],
                dry_run=options["dry_run"],
                question=f"Import {manifest.rows} grades into the archive?",
                noinput=not options["interactive"],
            ):
                return
            result = export.import_year(path, using=options["database"])
        except ArchiveError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {result.rows} grades of {result.academic_year} into the archive "
                f"({result.groups} (class, term) groups) in {result.seconds:.2f} s; "
                "restore_grades --term brings them back to live partitions."
            )
        )
