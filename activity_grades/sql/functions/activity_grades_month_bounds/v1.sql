-- activity_grades_month_bounds v1, installed by migration 0015_monthly_partitions.
-- STUB. After every migrate the app's post_migrate handler replaces it with the version
-- generated from settings (the calendar month of p_at in TERM_TIME_ZONE); this one only
-- makes a half-installed database fail loudly.
CREATE OR REPLACE FUNCTION activity_grades_month_bounds(
    p_at timestamptz, OUT starts_at timestamptz, OUT ends_at timestamptz, OUT label text
) LANGUAGE plpgsql STABLE AS $$
BEGIN
    RAISE EXCEPTION 'activity_grades lookups are not installed: run manage.py migrate';
END $$;
