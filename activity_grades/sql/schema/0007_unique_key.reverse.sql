-- Migration 0007_unique_key, reverse (then functions/activity_grades_partition_ddl/v1.sql
-- restores the partition DDL). 0006 knows one mode only, (activity_id, student_id)
-- unique across the tree: a database that keeps several attempts cannot go back to it.
DO $$
BEGIN
    IF NOT activity_grades_unique_key() OR NOT EXISTS (
        SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass('activity_grades')
           AND conname = 'activity_grades_activity_student_key' AND contype = 'u')
    THEN
        RAISE EXCEPTION 'activity_grades: (activity_id, student_id) is not unique in this '
            'database, which migration 0006 requires'
            USING HINT = 'set ACTIVITY_GRADES[''UNIQUE_KEY''] to (''activity_id'', '
                '''student_id'') and run manage.py apply_unique_key first';
    END IF;
END $$;
DROP FUNCTION IF EXISTS activity_grades_unique_key();
