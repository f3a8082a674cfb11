"""Settings of the demo project (a small LMS with activity_grades installed).

Configuration comes from the environment through django-environ. The database is
always PostgreSQL: ``DATABASE_URL`` when set, otherwise an embedded server started
from the ``pgserver`` pip package (see ``gradeproject/embedded_db.py``).
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env(
    DEBUG=(bool, False),
    SECRET_KEY=(str, "demo-only-not-secret"),
    ALLOWED_HOSTS=(list, ["localhost", "127.0.0.1", "testserver"]),
    TIME_ZONE=(str, "UTC"),
)
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env("DEBUG")
SECRET_KEY = env("SECRET_KEY")
ALLOWED_HOSTS = env("ALLOWED_HOSTS")

if not env.str("DATABASE_URL", default=""):
    from gradeproject.embedded_db import database_url

    database_url()  # exports DATABASE_URL for this process and its children

DATABASES = {"default": env.db("DATABASE_URL")}
DATABASES["default"].setdefault("TEST", {})
# Parallel runs (CI matrix, several developers on one server) can pick their own name.
if env.str("TEST_DATABASE_NAME", default=""):
    DATABASES["default"]["TEST"]["NAME"] = env.str("TEST_DATABASE_NAME")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "gradeproject.lms",
    "activity_grades",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files as a production site serves them, DEBUG off: `manage.py collectstatic`
    # copies them into STATIC_ROOT and WhiteNoise serves them from there, whatever the
    # WSGI server (`python3 scripts/dev.py serve` does both).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "gradeproject.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "gradeproject.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE")
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))  # git-ignored
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # collectstatic also writes gzip copies, which WhiteNoise serves to browsers that take
    # them. Not the Manifest variant (hashed names): its URLs need collectstatic to have
    # run, and the tests render the admin without it.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# The demo LMS uses the seed's table names, so activity_grades' defaults fit; they
# are spelled out here as the example an LMS with other names would edit.
ACTIVITY_GRADES = {
    "ACTIVITIES_TABLE": "activities",
    "ACTIVITY_ID_COLUMN": "id",
    "ACTIVITY_CLASS_COLUMN": "class_id",
    "TERMS_TABLE": "terms",
    "TERM_ID_COLUMN": "id",
    "TERM_START_COLUMN": "start_date",
    "TERM_END_COLUMN": "end_date",
    "TERM_YEAR_COLUMN": "academic_year",
    "UPCOMING_TERMS": env.int("ACTIVITY_GRADES_UPCOMING_TERMS", default=1),
}

# The app's objects in a schema of their own (tests/test_schema_setting.py): the schema
# must also be on the connection's search_path (check activity_grades.E013).
if env.str("ACTIVITY_GRADES_SCHEMA", default=""):
    ACTIVITY_GRADES["SCHEMA"] = env.str("ACTIVITY_GRADES_SCHEMA")
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = (
        f"-c search_path=public,{ACTIVITY_GRADES['SCHEMA']}"
    )

# A read replica for reporting reads (docs/replicas.md; tests/test_replicas.py runs a
# real streaming standby): its URL in DATABASE_REPLICA_URL.
if env.str("DATABASE_REPLICA_URL", default=""):
    DATABASES["replica"] = env.db("DATABASE_REPLICA_URL")
    # The test runner never creates a database on the replica: it replays the primary's.
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
    ACTIVITY_GRADES["READ_REPLICAS"] = ["replica"]
    ACTIVITY_GRADES["REPLICA_MAX_LAG"] = env.float("ACTIVITY_GRADES_REPLICA_MAX_LAG", default=30)
    ACTIVITY_GRADES["REPLICA_CHECK_SECONDS"] = env.float(
        "ACTIVITY_GRADES_REPLICA_CHECK_SECONDS", default=5
    )
# Shard servers (docs/sharding.md; bench/shard_bench.py starts two): DATABASE_SHARD_URLS,
# comma-separated database URLs, become the aliases shard1, shard2, ... and
# ACTIVITY_GRADES['SHARDS']; then run `manage.py setup_shards`. Unset: no shards.
_shard_urls = env.list("DATABASE_SHARD_URLS", default=[])
for _n, _url in enumerate(_shard_urls, start=1):
    DATABASES[f"shard{_n}"] = env.db_url_config(_url)
    # Never migrated, never created by the test runner: setup_shards fills a shard.
    DATABASES[f"shard{_n}"]["TEST"] = {"MIRROR": "default"}
    DATABASES[f"shard{_n}"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
if _shard_urls:
    ACTIVITY_GRADES["SHARDS"] = [f"shard{n}" for n in range(1, len(_shard_urls) + 1)]
DATABASE_ROUTERS = ["activity_grades.routers.ReplicaRouter"]
MIDDLEWARE.append("activity_grades.middleware.ReadYourWritesMiddleware")
# Celery (gradeproject/celery.py): the broker and results on the machine's Redis.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="redis://127.0.0.1:6379/0")
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
CELERY_RESULT_EXPIRES = env.int("CELERY_RESULT_EXPIRES", default=86400)  # seconds
CELERY_BEAT_SCHEDULE = {  # activity_grades.tasks.BEAT_SCHEDULE, spelled out
    "activity-grades-maintenance": {
        "task": "activity_grades.tasks.run_partition_maintenance",
        "schedule": 900.0,
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"activity_grades": {"handlers": ["console"], "level": "WARNING"}},
}
