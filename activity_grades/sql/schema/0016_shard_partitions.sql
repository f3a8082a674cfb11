-- Migration 0016_shard_partitions (issue 16): the row-level key-index trigger functions of
-- foreign partitions run, like the other trigger functions (migration 0009), with the
-- app's schema first on search_path, whatever the session's own.
DO $$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY['activity_grades_key_insert_row()',
                             'activity_grades_key_delete_row()']
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp',
                       f::regprocedure, current_schema());
    END LOOP;
END $$;
