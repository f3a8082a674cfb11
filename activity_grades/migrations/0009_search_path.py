"""Routing for SQL clients whatever their ``search_path``.

The functions the triggers call (``activity_grades_route``, ``_move``, ``_keys_insert``,
``_keys_delete``, ``_keys_update``, ``_no_truncate``) and the two that create tables
(``_ensure_partition``, ``_archive_year``) get ``SET search_path = <the app's schema>,
pg_temp``, so a client whose ``search_path`` does not hold the app's schema is routed like
Django, and a partition created for it (or an archive table) lands beside the parent,
also when ``ACTIVITY_GRADES['SCHEMA']`` is not first on Django's search_path. The LMS
lookups name the LMS's tables with their schema (generated after migrate). Reverse:
``RESET search_path`` on the eight functions.
"""

from django.db import migrations

from activity_grades.sql import run_sql_files


class Migration(migrations.Migration):
    dependencies = [("activity_grades", "0008_conversion")]

    operations = [
        run_sql_files(["schema/0009_search_path.sql"], ["schema/0009_search_path.reverse.sql"])
    ]
