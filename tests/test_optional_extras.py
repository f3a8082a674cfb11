"""Without its optional extras the app still works: a child process where importing
prometheus_client or celery fails, as on a site that installed the app alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings

from .archive_support import ROOT, database_url

SCRIPT = """
import sys
sys.modules["prometheus_client"] = None  # "pip install django-activity-grades" alone
sys.modules["celery"] = None
import django
django.setup()
from django.test import Client, override_settings
from activity_grades import views
assert views._exposition is None
try:
    import activity_grades.tasks
except ImportError as exc:
    print("tasks:", exc)
token = {**django.conf.settings.ACTIVITY_GRADES, "METRICS_TOKEN": "t"}
with override_settings(ACTIVITY_GRADES=token):
    client = Client(HTTP_AUTHORIZATION="Bearer t")
    text = client.get("/activity-grades/metrics")
    print("text:", text.status_code, text.content.decode().strip())
    data = client.get("/activity-grades/metrics", {"format": "json"})
    print("json:", data.status_code, sorted(data.json())[:3])
"""


@pytest.mark.django_db
def test_the_app_without_prometheus_client_and_celery():
    env = dict(os.environ)
    env.pop("TEST_DATABASE_NAME", None)
    env.update(
        DATABASE_URL=database_url("no_extras"), DJANGO_SETTINGS_MODULE=settings.SETTINGS_MODULE
    )
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert (
        "tasks: activity_grades.tasks needs Celery: pip install 'django-activity-grades[celery]'"
        in out
    )
    assert "text: 501 The Prometheus format needs prometheus_client" in out
    assert "json: 200 ['by_class', 'by_shard', 'by_term']" in out
