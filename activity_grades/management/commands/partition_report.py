from __future__ import annotations

import csv
import json
from dataclasses import asdict
from typing import Any
from zoneinfo import ZoneInfo

from django.core.management.base import BaseCommand, CommandError, CommandParser

from activity_grades import replicas
from activity_grades.core.settings import app_settings
from activity_grades.reporting import stats
from activity_grades.reporting.archive import ArchiveYear, archive_years

from ._confirm import human_bytes

CSV_FIELDS = (
    "class_id",
    "term_id",
    "table_name",
    "status",
    "rows",
    "total_bytes",
    "exact",
    "shard",
    "shard_error",
)


class Command(BaseCommand):
    help = (
        "One line per partition of activity_grades: class, term, table, rows, total size. "
        "With --warn-rows/--warn-bytes, exits non-zero when a partition crosses a threshold."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=["table", "json", "csv"], default="table")
        parser.add_argument(
            "--exact", action="store_true", help="count(*) every partition instead of estimates"
        )
        parser.add_argument(
            "--warn-rows", type=int, default=None, help="fail when a partition has more rows"
        )
        parser.add_argument(
            "--warn-bytes", type=int, default=None, help="fail when a partition is larger (bytes)"
        )
        parser.add_argument("--database", default="default")

    def handle(self, *args: Any, **options: Any) -> None:
        # Sizes and estimates are the same on a streaming replica: read one when fit.
        rep = stats.overview(exact=options["exact"], using=replicas.reader(options["database"]))
        {"json": self._json, "csv": self._csv, "table": self._table}[options["format"]](
            rep, options
        )
        over = self._over(rep, options["warn_rows"], options["warn_bytes"])
        if over:
            more = f"; and {len(over) - 10} more" if len(over) > 10 else ""
            shown = "; ".join(over[:10]) + more
            raise CommandError(f"{len(over)} partition(s) over the threshold: {shown}")

    @staticmethod
    def _over(rep: stats.Overview, warn_rows: int | None, warn_bytes: int | None) -> list[str]:
        out = []
        for p in rep.partitions:
            if warn_rows is not None and p.rows > warn_rows:
                out.append(f"{p.table_name} has {p.rows:,} rows > {warn_rows:,}")
            if warn_bytes is not None and p.total_bytes > warn_bytes:
                out.append(
                    f"{p.table_name} is {human_bytes(p.total_bytes)} > {human_bytes(warn_bytes)}"
                )
        return out

    def _json(self, rep: stats.Overview, options: dict[str, Any]) -> None:
        payload = {
            "partitions": [p.as_dict() for p in rep.partitions],
            "total_rows": rep.total_rows,
            "total_bytes": rep.total_bytes,
            "rows_in_parent": rep.rows_in_parent,
            "shards": [asdict(t) for t in rep.by_shard()],
            "archive_years": [y.as_dict() for y in archive_years(options["database"])],
        }
        self.stdout.write(json.dumps(payload, indent=2))

    def _csv(self, rep: stats.Overview, options: dict[str, Any]) -> None:
        writer = csv.writer(self.stdout, lineterminator="\n")
        writer.writerow(CSV_FIELDS)
        for p in rep.partitions:
            values = [getattr(p, f) for f in CSV_FIELDS]
            writer.writerow(["" if v is None else v for v in values])

    def _table(self, rep: stats.Overview, options: dict[str, Any]) -> None:
        headers: tuple[str, ...] = ("class", "term", "table", "rows", "total size")
        lines: list[tuple[str, ...]] = [
            (p.class_id, _term(p), p.table_name, *_figures(p)) for p in rep.partitions
        ]
        # Ids can be 200 characters and are cut; table names (at most 63) never are,
        # since they are what a user copies into psql.
        caps: tuple[int, ...] = (40, 40, 63, 40, 40)
        if rep.sharded:  # where each partition is: 'local' or its shard's alias
            headers, caps = (*headers, "shard"), (*caps, 63)
            lines = [(*r, p.shard) for r, p in zip(lines, rep.partitions, strict=True)]
        lines = [
            tuple(v if len(v) <= c else v[: c - 3] + "..." for v, c in zip(r, caps, strict=True))
            for r in lines
        ]
        widths = [max([len(h)] + [len(r[i]) for r in lines]) for i, h in enumerate(headers)]
        fmt = "  ".join(f"{{:{'>' if i == 3 else '<'}{w}}}" for i, w in enumerate(widths))
        self.stdout.write(fmt.format(*headers))
        for row in lines:
            self.stdout.write(fmt.format(*row))
        kind = "exact" if options["exact"] else "estimated"
        months = f" ({rep.month_tables} month tables)" if rep.month_tables else ""
        self.stdout.write(
            f"{len(rep.partitions)} partitions{months}, {rep.total_rows:,} rows ({kind}), "
            f"{human_bytes(rep.total_bytes)}; rows in the parent itself: {rep.rows_in_parent}"
        )
        if rep.sharded:
            self._shards(rep.by_shard())
        self._archive(archive_years(options["database"]))

    def _shards(self, totals: list[stats.ShardTotal]) -> None:
        """Totals per place: the coordinator ('local') and each shard, down ones said."""
        self.stdout.write("")
        headers = ("shard", "partitions", "rows", "total size", "state")
        lines = [
            (
                t.shard,
                f"{t.partitions:,}",
                f"{t.rows:,}" if t.up else "-",
                human_bytes(t.total_bytes) if t.up else "-",
                "up" if t.up else f"{stats.SHARD_UNREACHABLE}: {t.error}",
            )
            for t in totals
        ]
        widths = [max([len(h)] + [len(r[i]) for r in lines]) for i, h in enumerate(headers)]
        fmt = "  ".join(f"{{:{'<' if i in (0, 4) else '>'}{w}}}" for i, w in enumerate(widths))
        self.stdout.write(fmt.format(*headers).rstrip())
        for row in lines:
            self.stdout.write(fmt.format(*row).rstrip())

    def _archive(self, years: list[ArchiveYear]) -> None:
        """Archive sizes and compression ratio per academic year (docs/archiving.md)."""
        if not years:
            return
        self.stdout.write("")
        headers = ("academic year", "archived", "size", "bytes/row", "ratio", "row format")
        lines = [
            (
                y.academic_year,
                f"{y.rows:,}",
                human_bytes(y.bytes),
                "-" if y.bytes_per_row is None else f"{y.bytes_per_row:.1f}",
                "-" if y.ratio is None else f"{y.ratio:.1f}x",
                f"{y.rows_format_rows:,} rows, {human_bytes(y.rows_format_bytes)}"
                if y.rows_format_bytes
                else "-",
            )
            for y in years
        ]
        widths = [max([len(h)] + [len(r[i]) for r in lines]) for i, h in enumerate(headers)]
        fmt = "  ".join(f"{{:{'<' if i in (0, 5) else '>'}{w}}}" for i, w in enumerate(widths))
        self.stdout.write(fmt.format(*headers))
        for row in lines:
            self.stdout.write(fmt.format(*row))
        self.stdout.write(
            "ratio: bytes the grades took before archiving per byte of the compressed archive; "
            "row format: grades not yet converted (manage.py compress_archive)"
        )


def _figures(p: stats.PartitionStats) -> tuple[str, str]:
    """Rows and total size, or what a shard that did not answer leaves of them."""
    if p.shard_error:
        return "-", p.shard_error
    return f"{p.rows:,}", human_bytes(p.total_bytes)


def _term(p: stats.PartitionStats) -> str:
    """The term column: a month table as "  <term> <YYYY-MM>" under its term's row."""
    if p.month and p.starts_at is not None:
        return f"  {p.term_id} {p.starts_at.astimezone(ZoneInfo(app_settings.time_zone)):%Y-%m}"
    if p.term_id and p.granularity == "month":
        return f"{p.term_id} (by month)"
    return p.term_id or "-"
