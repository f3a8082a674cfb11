"""Small things a user sees (issue 12, item 14)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gradeproject.lms.models import Activity
from tests.admin_support import staff

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
PATH_IN_CODE = re.compile(r"`(\.\./[^`]+)`")


DOCS = ["README.md", *sorted(p.name for p in (ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", DOCS)
def test_documentation_links_stay_inside_the_repository(doc):
    path = ROOT / doc if doc == "README.md" else ROOT / "docs" / doc
    text = path.read_text()
    outside, missing = [], []
    for target in LINK.findall(text) + PATH_IN_CODE.findall(text):
        if re.match(r"^[a-z]+:", target):
            continue  # a URL
        resolved = (path.parent / target).resolve()
        if not resolved.is_relative_to(ROOT):
            outside.append(target)
        elif not resolved.exists():
            missing.append(target)
    assert outside == [] and missing == []


@pytest.mark.django_db
def test_the_demo_lms_admin_says_activities(client):
    assert Activity._meta.verbose_name_plural == "activities"
    client.force_login(staff("root", superuser=True))
    page = client.get("/admin/").content.decode()
    assert "Activities" in page and "Activitys" not in page
