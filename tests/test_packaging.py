"""`activity_grades` is pip-installable on its own, with its migrations, SQL and templates."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "activity_grades"


def test_the_wheel_ships_the_app_with_its_migrations_sql_and_templates(tmp_path):
    # Built from a copy: setuptools reuses an in-tree build/ directory, which would
    # hide a packaging setting that no longer includes something.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(APP, src / "activity_grades", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(src)],
        check=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("django_activity_grades-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    needed = [
        p.relative_to(ROOT).as_posix()
        for p in [
            *APP.glob("migrations/*.py"),
            *(APP / "templates").rglob("*.html"),
            *(APP / "sql").rglob("*.sql"),
            APP / "sql" / "MANIFEST.sha256",
            APP / "sql" / "README.md",
        ]
    ]
    assert len(needed) > 5
    assert set(needed) <= names, sorted(set(needed) - names)
    # The SQL the migrations load, every released version included.
    assert "activity_grades/sql/__init__.py" in names
    assert "activity_grades/sql/functions/activity_grades_route/v1.sql" in names
    assert "activity_grades/sql/schema/0001_tables.sql" in names
    shipped_sql = [n for n in names if n.startswith("activity_grades/sql/") and n.endswith(".sql")]
    assert len(shipped_sql) > 20
    assert "activity_grades/management/commands/create_partitions.py" in names
    # The app alone: not the demo project, the tests or the benchmarks.
    assert not [n for n in names if n.split("/")[0] in {"gradeproject", "tests", "bench"}]
    # The optional extras: pip install 'django-activity-grades[celery,prometheus]'.
    (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    for extra in ("celery", "prometheus"):
        assert f"Provides-Extra: {extra}" in text, extra
    assert "activity_grades/tasks.py" in names and "activity_grades/signals.py" in names
