"""apply_retention --export-to writes each dropped year to verified Parquet files first;
restore_grades --from-file brings an exported year back into the archive, exactly."""

from __future__ import annotations

import json
import subprocess
import sys
from io import StringIO

import pyarrow.parquet as pq
import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings

from .archive_support import ROOT, add_grades, database_url, drop_archive, ids, scalar
from .test_archive_chunks import SPECIAL, exact
from .test_retention import archived_years  # noqa: F401 (fixture)


def archived() -> dict:
    return exact("archived_activity_grades", "TRUE")


def stamps() -> set:
    return ids("SELECT id || ' ' || archived_at FROM archived_activity_grades")


@pytest.fixture
def years_with_special_values(lms):
    """The retention fixture's three archived years plus grades with every kind of value."""
    with connection.cursor() as cursor:
        cursor.execute(SPECIAL)  # 2023_fall: NaN, infinities, -0, ms, JSON, NULLs
    call_command("archive_grades", "--term", "2023_fall", "--noinput", stdout=StringIO())


@pytest.mark.usefixtures("archived_years", "years_with_special_values")
def test_export_then_drop_then_bring_back(tmp_path):
    before, before_stamps = archived(), stamps()
    assert len(before) == 66
    out = StringIO()
    call_command(
        "apply_retention", "--years", "1", "--export-to", str(tmp_path), "--noinput", stdout=out
    )
    text = out.getvalue()
    assert "each year exported to" in text and "Dropped 3 archive tables, 66 rows" in text
    assert "exported 2023-2024: 36 grades" in text and "(verified)" in text
    assert scalar("SELECT count(*) FROM archived_activity_grades") == 0

    manifest = json.loads((tmp_path / "2023-2024" / "manifest.json").read_text())
    assert manifest["rows"] == 36 and manifest["compression"] == "zstd"
    assert manifest["checksum"][0] == "36" and len(manifest["sha256"]) == 64
    parquet_file = pq.ParquetFile(tmp_path / "2023-2024" / "grades.parquet")
    assert parquet_file.metadata.num_rows == 36
    assert parquet_file.metadata.row_group(0).column(0).compression == "ZSTD"

    for year in ("2021-2022", "2022-2023", "2023-2024"):
        out = StringIO()
        call_command("restore_grades", "--from-file", str(tmp_path / year), "--noinput", stdout=out)
        assert f"of {year} into the archive" in out.getvalue()
    assert archived() == before  # every column, NaN and -0 and milliseconds included
    assert stamps() == before_stamps  # and when each grade was archived
    assert scalar("SELECT count(*) FROM archived_activity_grades_chunk") > 0

    # Back to live partitions from there, as any archived grade.
    call_command("restore_grades", "--term", "2023_fall", "--noinput", stdout=StringIO())
    assert exact("activity_grades", "term_id = '2023_fall'") == {
        k: v for k, v in before.items() if k.startswith(("y23-", "x-"))
    }


@pytest.mark.usefixtures("archived_years")
def test_bringing_a_year_back_twice_or_a_changed_file_is_refused(tmp_path):
    call_command(
        "apply_retention",
        "--years",
        "2",
        "--export-to",
        str(tmp_path),
        "--noinput",
        stdout=StringIO(),
    )
    folder = tmp_path / "2021-2022"
    call_command("restore_grades", "--from-file", str(folder), "--noinput", stdout=StringIO())
    with pytest.raises(CommandError, match="10 grades of .* are archived or live already"):
        call_command(
            "restore_grades",
            "--from-file",
            str(folder / "manifest.json"),
            "--noinput",
            stdout=StringIO(),
        )
    data = folder / "grades.parquet"
    data.write_bytes(data.read_bytes()[:-20] + b"\0" * 20)
    with pytest.raises(CommandError, match="does not match its manifest"):
        call_command("restore_grades", "--from-file", str(folder), "--noinput", stdout=StringIO())
    assert (
        scalar("SELECT count(*) FROM archived_activity_grades WHERE academic_year = '2021-2022'")
        == 10
    )


def test_without_pyarrow_nothing_is_exported_or_dropped(committed_lms, tmp_path):
    drop_archive()
    try:
        add_grades("123/a0", "2023-09-01", 5, "old-")
        call_command("archive_grades", "--term", "2023_fall", "--noinput", stdout=StringIO())
        code = (
            "import sys; sys.modules['pyarrow'] = None; sys.modules['pyarrow.parquet'] = None\n"
            "import django; django.setup()\n"
            "from django.core.management import execute_from_command_line\n"
            f"execute_from_command_line(['manage.py', 'apply_retention', '--years', '1', "
            f"'--export-to', {str(tmp_path)!r}, '--noinput'])\n"
        )
        env = {
            "DATABASE_URL": database_url("no_pyarrow"),
            "DJANGO_SETTINGS_MODULE": "gradeproject.settings",
            "PATH": "/usr/bin:/bin",
        }
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode != 0
        assert "needs pyarrow: pip install 'django-activity-grades[export]'" in done.stderr
        assert "Traceback" not in done.stderr
        assert scalar("SELECT count(*) FROM archived_activity_grades") == 5
        assert list(tmp_path.iterdir()) == []
    finally:
        drop_archive()


def test_the_maintenance_job_exports_before_retention_when_the_setting_says_so(lms, tmp_path):
    add_grades("123/a0", "2023-09-01", 10, "old-")
    call_command("archive_grades", "--term", "2023_fall", "--noinput", stdout=StringIO())
    before = archived()
    extra = {
        "MAINTENANCE_RETENTION": True,
        "RETENTION_YEARS": 1,
        "RETENTION_EXPORT_DIR": str(tmp_path),
    }
    with override_settings(ACTIVITY_GRADES={**settings.ACTIVITY_GRADES, **extra}):
        out = StringIO()
        call_command("run_partition_maintenance", stdout=out)
    assert "retention dropped 1 archive tables (10 rows)" in out.getvalue()
    assert json.loads((tmp_path / "2023-2024" / "manifest.json").read_text())["rows"] == 10
    call_command(
        "restore_grades", "--from-file", str(tmp_path / "2023-2024"), "--noinput", stdout=StringIO()
    )
    assert archived() == before
