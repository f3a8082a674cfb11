"""Parquet files of archived grades (pyarrow, an optional dependency: ``[export]``).

One file per exported academic year, compressed with zstd, one column per grade column
plus ``archived_at`` and ``academic_year``, in the database's own types: text as
strings, ``jsonb`` as its PostgreSQL text (exact: loaded back it is the same jsonb),
``double precision`` as float64 (NaN, infinities and -0 kept), timestamps as UTC
microseconds, booleans, integers. The file is written in row groups as the rows are
read, so a year never has to fit in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..core.exceptions import ExportUnavailable

try:
    import pyarrow as pa
    import pyarrow.parquet as pq
except ImportError:  # the optional extra is not installed
    pa = None
    pq = None

__all__ = ["AVAILABLE", "COMPRESSION", "read_batches", "require", "sha256_of", "write"]

AVAILABLE = pa is not None
COMPRESSION = "zstd"

# PostgreSQL type (format_type) -> Arrow type; anything else is stored as its text.
_TYPES: dict[str, Any] = (
    {
        "double precision": pa.float64(),
        "real": pa.float32(),
        "integer": pa.int32(),
        "bigint": pa.int64(),
        "smallint": pa.int16(),
        "boolean": pa.bool_(),
        "timestamp with time zone": pa.timestamp("us", tz="UTC"),
        "timestamp(3) with time zone": pa.timestamp("us", tz="UTC"),
    }
    if AVAILABLE
    else {}
)


def require() -> None:
    """Raise ``ExportUnavailable`` with what to install when pyarrow is missing."""
    if not AVAILABLE:
        raise ExportUnavailable(
            "exporting to Parquet needs pyarrow: pip install 'django-activity-grades[export]' "
            "(or pip install pyarrow); nothing was exported or dropped"
        )


def arrow_type(pg_type: str) -> Any:
    return _TYPES.get(pg_type, pa.string())


def write(
    path: Path, columns: Sequence[tuple[str, str]], batches: Iterable[Sequence[tuple[Any, ...]]]
) -> int:
    """Write row batches to ``path`` (zstd); ``columns`` are (name, PostgreSQL type).

    Values that are not of a native Arrow type (jsonb, text of other types) must come as
    their text. Returns the rows written.
    """
    require()
    schema = pa.schema([pa.field(name, arrow_type(t)) for name, t in columns])
    rows = 0
    with pq.ParquetWriter(str(path), schema, compression=COMPRESSION) as writer:
        for batch in batches:
            if not batch:
                continue
            arrays = [
                pa.array([row[i] for row in batch], type=schema.field(i).type)
                for i in range(len(columns))
            ]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            rows += len(batch)
        if rows == 0:
            writer.write_table(schema.empty_table())
    return rows


def read_batches(path: Path, batch_rows: int = 10_000) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of ``path`` as tuples, ``batch_rows`` at a time, in the file's order."""
    require()
    source = pq.ParquetFile(str(path))
    for batch in source.iter_batches(batch_size=batch_rows):
        columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
        yield list(zip(*columns, strict=True))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
