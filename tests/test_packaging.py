"""`activity_grades` is pip-installable on its own, with its migrations and templates."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "activity_grades"


def test_the_wheel_ships_the_app_with_its_migrations_and_templates(tmp_path):
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
        for p in [*APP.glob("migrations/*.py"), *(APP / "templates").rglob("*.html")]
    ]
    assert len(needed) > 5
    assert set(needed) <= names, sorted(set(needed) - names)
    assert "activity_grades/management/commands/create_partitions.py" in names
    # The app alone: not the demo project, the tests or the benchmarks.
    assert not [n for n in names if n.split("/")[0] in {"gradeproject", "tests", "bench"}]
