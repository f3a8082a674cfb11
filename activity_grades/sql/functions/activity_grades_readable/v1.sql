-- activity_grades_readable v1, installed by migration 0013_readable_timestamps.
-- The trigger function of every partition's activity_grades_readable trigger (BEFORE
-- INSERT OR UPDATE, fired only by its WHEN clause: a timestamp clients cannot read back).
-- activity_grades_move watches the routing columns only, so an UPDATE that set
-- submitted_at, graded_at, updated_at or commitment_deadline to infinity, a BC date or
-- year 10000 was stored and broke every read of its class. Same rule, text and SQLSTATE
-- (22008) as the routing trigger: activity_grades_check_timestamps.
CREATE OR REPLACE FUNCTION activity_grades_readable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM activity_grades_check_timestamps(NEW);
    RETURN NEW;
END $$;
