"""The demo project's Celery app (settings ``CELERY_*``; broker Redis by default).

celery -A gradeproject.celery worker -B -l INFO   # a worker with beat: maintenance every 15 min
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gradeproject.settings")

app = Celery("gradeproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
