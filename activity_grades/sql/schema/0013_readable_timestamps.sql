-- Migration 0013_readable_timestamps: activity_grades_readable is a trigger function, so it
-- runs with the app's schema first on search_path like the others (see 0009_search_path).
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION activity_grades_readable() SET search_path = %I, pg_temp',
                   current_schema());
END $$;
