from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandParser

from activity_grades import stats


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


class Command(BaseCommand):
    help = "One line per partition of activity_grades: class, term, table, rows, total size."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=["table", "json"], default="table")
        parser.add_argument(
            "--exact", action="store_true", help="count(*) every partition instead of estimates"
        )
        parser.add_argument("--database", default="default")

    def handle(self, *args, **options) -> None:
        rep = stats.report(exact=options["exact"], using=options["database"])
        if options["format"] == "json":
            payload = {
                "partitions": [p.as_dict() for p in rep.partitions],
                "total_rows": rep.total_rows,
                "total_bytes": rep.total_bytes,
                "rows_in_parent": rep.rows_in_parent,
            }
            self.stdout.write(json.dumps(payload, indent=2))
            return
        headers = ("class", "term", "table", "rows", "total size")
        lines = [
            (p.class_id, p.term_id or "-", p.table_name, f"{p.rows:,}", human_bytes(p.total_bytes))
            for p in rep.partitions
        ]
        widths = [
            min(40, max([len(h)] + [len(r[i]) for r in lines])) for i, h in enumerate(headers)
        ]
        fmt = "  ".join(f"{{:{'>' if i == 3 else '<'}{w}}}" for i, w in enumerate(widths))
        self.stdout.write(fmt.format(*headers))
        for row in lines:
            self.stdout.write(fmt.format(*(v if len(v) <= 40 else v[:37] + "..." for v in row)))
        kind = "exact" if options["exact"] else "estimated"
        self.stdout.write(
            f"{len(rep.partitions)} partitions, {rep.total_rows:,} rows ({kind}), "
            f"{human_bytes(rep.total_bytes)}; rows in the parent itself: {rep.rows_in_parent}"
        )
