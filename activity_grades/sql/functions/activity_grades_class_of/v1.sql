-- activity_grades_class_of v1, installed by migration 0001_initial.
-- STUB. After every migrate the app's post_migrate handler replaces it with the
-- version generated from ACTIVITY_GRADES settings; this one only makes a
-- half-installed database fail loudly.
CREATE OR REPLACE FUNCTION activity_grades_class_of(p_activity_id text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RAISE EXCEPTION 'activity_grades lookups are not installed: run manage.py migrate';
END $$;
