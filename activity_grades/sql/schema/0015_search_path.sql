-- Migration 0015_monthly_partitions: activity_grades_ensure_month creates tables, called
-- by the routing and move triggers: like the functions of 0009_search_path.sql it runs
-- with the app's schema first on search_path (0009's file runs again for route v5 and
-- move v4, whose CREATE OR REPLACE dropped the setting).
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION activity_grades_ensure_month(text, text, timestamptz) '
                   'SET search_path = %I, pg_temp', current_schema());
END $$;
