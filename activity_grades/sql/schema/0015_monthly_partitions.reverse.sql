-- Reverse of migration 0015_monthly_partitions (route v4, move v3 and the search_path of
-- 0009 are loaded after this file). Month tables would be left unregistered under their
-- term tables, their grades read by nothing that routes: refused while any is live.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM activity_grades_month WHERE status = 'live') THEN
        RAISE EXCEPTION 'activity_grades: % month partitions are live',
            (SELECT count(*) FROM activity_grades_month WHERE status = 'live')
            USING HINT = 'archive their terms (manage.py archive_grades) before migrating '
                         'back before 0015';
    END IF;
END $$;
DROP TABLE activity_grades_month;
ALTER TABLE activity_grades_partition DROP COLUMN granularity;
DROP FUNCTION activity_grades_ensure_month(text, text, timestamptz);
DROP FUNCTION activity_grades_month_bounds(timestamptz);
DROP FUNCTION activity_grades_granularity();
