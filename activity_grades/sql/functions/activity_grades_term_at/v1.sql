-- activity_grades_term_at v1, installed by migration 0001_initial.
-- STUB. After every migrate the app's post_migrate handler replaces it with the
-- version generated from ACTIVITY_GRADES settings; this one only makes a
-- half-installed database fail loudly.
CREATE OR REPLACE FUNCTION activity_grades_term_at(p_at timestamptz) RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RAISE EXCEPTION 'activity_grades lookups are not installed: run manage.py migrate';
END $$;
