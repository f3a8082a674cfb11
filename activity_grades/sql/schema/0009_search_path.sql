-- Migration 0009_search_path: the functions the parent's and the partitions' triggers
-- call, and the two that create tables, run with the app's schema first on search_path,
-- whatever the session's own: a SQL client whose search_path lacks that schema (INSERT
-- INTO public.activity_grades from psql with search_path = lms) is routed, and a
-- partition or archive table lands beside the parent, not in the session's first schema
-- (ACTIVITY_GRADES['SCHEMA'] need not be first). The functions these call (lookups, the
-- dispatcher, partition DDL) run inside that setting.
-- current_schema() is where the migration creates the app's objects (the staging schema
-- beside an LMS's own activity_grades table). convert_grades_table moves the setting
-- with the functions. A later version of one of these functions (CREATE OR REPLACE
-- drops the setting) must run this file again in its migration.
DO $$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY['activity_grades_route()', 'activity_grades_move()',
                             'activity_grades_keys_insert()', 'activity_grades_keys_delete()',
                             'activity_grades_keys_update()', 'activity_grades_no_truncate()',
                             'activity_grades_ensure_partition(text, text)',
                             'activity_grades_archive_year(text)']
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp',
                       f::regprocedure, current_schema());
    END LOOP;
END $$;
