-- activity_grades_locate v1, installed by migration 0005_fast_route.
-- STUB. After every migrate the app's post_migrate handler replaces it with the
-- version generated from ACTIVITY_GRADES settings; this one only makes a
-- half-installed database fail loudly.
-- OR REPLACE: migrating back and forth leaves the generated version from post_migrate.
CREATE OR REPLACE FUNCTION activity_grades_locate(p_activity_id text, p_at timestamptz)
RETURNS TABLE (class_id text, term_id text) LANGUAGE plpgsql STABLE AS $$
BEGIN
    RAISE EXCEPTION 'activity_grades lookups are not installed: run manage.py migrate';
END $$;
