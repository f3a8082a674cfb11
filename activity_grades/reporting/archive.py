"""Archive sizes per academic year: bytes, grades, bytes per grade, compression ratio.

One model for ``partition_report`` and the admin dashboard. The compression ratio of a
year is what its grades took before they were archived (the live leaves they came from,
counted at archive time; for grades converted by ``compress_archive``, today's row
archive they were in) divided by what the year's chunk table takes now.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..db import archive as sql_archive

__all__ = ["ArchiveYear", "archive_years"]


@dataclass
class ArchiveYear:
    """One academic year of the archive, both formats together."""

    academic_year: str
    rows: int  # grades in compressed chunks
    bytes: int  # total size of the year's chunk table (heap, TOAST, indexes)
    source_bytes: int  # what those grades took before they were archived
    rows_format_rows: int = 0  # grades still in today's row archive (estimate)
    rows_format_bytes: int = 0

    @property
    def bytes_per_row(self) -> float | None:
        """Bytes per grade of the compressed chunks."""
        return self.bytes / self.rows if self.rows else None

    @property
    def ratio(self) -> float | None:
        """Bytes the chunked grades took before archiving, per byte they take now."""
        return self.source_bytes / self.bytes if self.rows and self.bytes else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bytes_per_row": self.bytes_per_row, "ratio": self.ratio}


def archive_years(using: str = "default") -> list[ArchiveYear]:
    """Every academic year that has an archive table, oldest first (catalog reads only)."""
    years: dict[str, ArchiveYear] = {}
    for year, _table, rows_format, size, rows, source in sql_archive.year_stats(using):
        entry = years.setdefault(year, ArchiveYear(year, 0, 0, 0))
        if rows_format:
            entry.rows_format_rows += rows
            entry.rows_format_bytes += size
        else:
            entry.rows, entry.bytes, entry.source_bytes = rows, size, source
    return list(years.values())
