"""Export archived academic years to Parquet files before retention drops them, and bring
an exported year back into the archive (``apply_retention --export-to``,
``restore_grades --from-file``).

An export writes ``<dir>/<year>/grades.parquet`` (zstd) from one consistent snapshot of
the year (both archive formats), reads the file back into a temporary table and compares
count and checksum of every column with the year in the database, and only then writes
``manifest.json`` (counts, checksum, sha256 of the file, the grades per archive table):
a manifest exists only for a verified export. Retention drops a year only after its
export verified, and refuses a table whose grades changed since.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..core.constants import LOGGER_NAME
from ..core.exceptions import ExportError
from ..core.settings import app_settings
from ..db import archive as sql_archive
from ..db import chunks, export
from ..db.connection import Cursor, atomic, cursor, snapshot
from ..files import parquet
from .archive import ensure_archive_year
from .base import Stopwatch, run_steps

__all__ = ["ExportedYear", "ImportedYear", "export_year", "import_year", "read_manifest"]

logger = logging.getLogger(LOGGER_NAME)

MANIFEST = "manifest.json"
DATA_FILE = "grades.parquet"
FORMAT = "activity_grades-archive-export"
BATCH_ROWS = 10_000


@dataclass
class ExportedYear:
    """A verified export of one academic year (what ``manifest.json`` holds)."""

    academic_year: str
    rows: int
    checksum: list[str]  # [count, sum of row hashes] as text (the sum exceeds 64 bits)
    file: str
    file_bytes: int
    sha256: str
    columns: list[list[str]]  # [name, PostgreSQL type]
    tables: dict[str, int]  # archive table -> grades it held at export time
    source_bytes: int  # the year's registry figure (for the compression ratio on import)
    exported_at: str
    format: str = FORMAT
    version: int = 1
    compression: str = parquet.COMPRESSION
    directory: str = field(default="", repr=False)


@dataclass
class ImportedYear:
    academic_year: str
    rows: int
    groups: int
    seconds: float


def _folder(year: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", year).strip("._") or "year"


def export_year(year: str, directory: Path, using: str = "default") -> ExportedYear:
    """Write and verify the Parquet export of ``year`` under ``directory``.

    Raises:
        ExportUnavailable: pyarrow is not installed.
        ExportError: the file read back differs from the database (the manifest is not
            written; the file stays for inspection).
    """
    parquet.require()
    clock = Stopwatch()
    target = directory / _folder(year)
    target.mkdir(parents=True, exist_ok=True)
    data = target / DATA_FILE
    partial = target / (DATA_FILE + ".partial")
    with snapshot(using) as cur:  # one snapshot: the rows, their checksum, the counts
        columns = export.archive_columns(cur)
        names = [n for n, _ in columns]
        expected = export.checksum_year(cur, year, names)
        tables = _table_counts(cur, year, using)
        batches = export.stream_year(using, year, columns, BATCH_ROWS)
        written = parquet.write(partial, columns, batches)
    partial.replace(data)
    if written != expected[0]:
        raise ExportError(f"export of {year}: wrote {written} rows, the archive has {expected[0]}")
    _verify_file(data, names, expected, using)
    manifest = ExportedYear(
        academic_year=year,
        rows=written,
        checksum=[str(expected[0]), str(expected[1])],
        file=DATA_FILE,
        file_bytes=data.stat().st_size,
        sha256=parquet.sha256_of(data),
        columns=[[n, t] for n, t in columns],
        tables=tables,
        source_bytes=_source_bytes(using, year),
        exported_at=datetime.now(timezone.utc).isoformat(),
        directory=str(target),
    )
    payload = {k: v for k, v in asdict(manifest).items() if k != "directory"}
    (target / MANIFEST).write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    logger.info(
        "exported %s grades of %s to %s (%s bytes) in %.1f s",
        written,
        year,
        data,
        manifest.file_bytes,
        clock.seconds,
    )
    return manifest


def _table_counts(cur: Cursor, year: str, using: str) -> dict[str, int]:
    counts = {}
    for table_year, table, _size, rows_format in sql_archive.year_tables(using):
        if table_year == year:
            counts[table] = (
                sql_archive.catalog_count(cur, table)
                if rows_format
                else chunks.year_count(cur, table)
            )
    return counts


def _source_bytes(using: str, year: str) -> int:
    return sum(source for y, _t, _f, _b, _n, source in sql_archive.year_stats(using) if y == year)


def _verify_file(path: Path, names: list[str], expected: Any, using: str) -> None:
    """Load the file into a temporary table and compare with the database's figures."""
    with atomic(using), cursor(using) as cur:
        export.create_load_table(cur)
        for batch in parquet.read_batches(path, BATCH_ROWS):
            export.load_rows(cur, names, batch)
        found = export.checksum_table(cur, export.LOAD_TABLE, names)
    if tuple(found) != tuple(expected):
        raise ExportError(
            f"the file {path} read back does not match the archive: file {found}, archive "
            f"{expected}; nothing was dropped"
        )


def read_manifest(path: Path) -> ExportedYear:
    """The manifest of an export folder (or of the manifest file itself).

    Raises:
        ExportError: no manifest, or not one of this app's exports.
    """
    file = path / MANIFEST if path.is_dir() else path
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise ExportError(f"cannot read the export manifest {file}: {exc}") from exc
    if data.get("format") != FORMAT:
        raise ExportError(f"{file} is not an activity_grades archive export")
    return ExportedYear(**data, directory=str(file.parent))


def import_year(path: Path, using: str = "default") -> ImportedYear:
    """Bring an exported year back into the archive, as compressed chunks, verified.

    The file must match its manifest (sha256, count, checksum), and none of its grades
    may be archived or live already. One transaction: load, check, copy each (class,
    term) into chunks and verify it.

    Raises:
        ExportUnavailable: pyarrow is not installed.
        ExportError: a check failed; nothing was changed.
    """
    parquet.require()
    clock = Stopwatch()
    manifest = read_manifest(path)
    data = Path(manifest.directory) / manifest.file
    if parquet.sha256_of(data) != manifest.sha256:
        raise ExportError(f"{data} does not match its manifest (sha256); nothing was changed")
    year = manifest.academic_year
    target = ensure_archive_year(year, using)
    names = [n for n, _ in manifest.columns]
    done: dict[str, int] = {"rows": 0, "groups": 0}

    def load(cur: Cursor) -> None:
        export.create_load_table(cur)
        for batch in parquet.read_batches(data, BATCH_ROWS):
            export.load_rows(cur, names, batch)
        found = export.checksum_table(cur, export.LOAD_TABLE, names)
        if [str(found[0]), str(found[1])] != manifest.checksum:
            raise ExportError(
                f"{data} does not match its manifest: {found} against {manifest.checksum}; "
                "nothing was changed"
            )
        clash = export.duplicates(cur, export.LOAD_TABLE)
        if clash:
            raise ExportError(
                f"{clash} grades of {data} are archived or live already; nothing was changed"
            )

    def copy(cur: Cursor) -> None:
        cols = [n for n in names if n != "academic_year"]
        for class_id, term_id, rows in sql_archive.row_groups(cur, export.LOAD_TABLE):
            group = (class_id, term_id)
            ids, written = chunks.copy_row_group(
                cur,
                export.LOAD_TABLE,
                *group,
                target,
                cols,
                year,
                app_settings.ARCHIVE_CHUNK_ROWS,
            )
            source = sql_archive.checksum_row_group(cur, cols, export.LOAD_TABLE, *group)
            if written != rows or chunks.checksum_chunks(cur, cols, target, ids) != source:
                raise ExportError(
                    f"verification failed importing class {class_id!r} term {term_id!r} "
                    f"of {year}; nothing was changed"
                )
            done["rows"] += written
            done["groups"] += 1
        chunks.year_added(cur, year, done["rows"], manifest.source_bytes)

    run_steps(using, app_settings.archive_lock_timeout, [load, copy])
    return ImportedYear(year, done["rows"], done["groups"], clock.seconds)
