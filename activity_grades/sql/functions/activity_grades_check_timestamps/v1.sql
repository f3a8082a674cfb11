-- activity_grades_check_timestamps v1, installed by migration 0011_guard_rails.
-- A grade's timestamps must be readable back by every client: finite and, in UTC, from
-- year 1 to year 9999 (Python's datetime, and so Django, cannot hold infinity, a BC date
-- or year 10000; one such row made every read of its class fail). The same rule and
-- text as activity_grades.core.rules.check_timestamp; SQLSTATE 22008.
CREATE OR REPLACE FUNCTION activity_grades_check_timestamps(r activity_grades) RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_column text;
    v_value timestamptz;
BEGIN
    FOR v_column, v_value IN VALUES ('submitted_at', r.submitted_at), ('graded_at', r.graded_at),
        ('created_at', r.created_at), ('updated_at', r.updated_at),
        ('commitment_deadline', r.commitment_deadline)
    LOOP
        IF v_value < '0001-01-01 00:00:00+00' OR v_value >= '10000-01-01 00:00:00+00' THEN
            RAISE EXCEPTION 'activity_grades: % must be a finite timestamp from year 1 to year '
                '9999 (UTC)', v_column
                USING ERRCODE = 'datetime_field_overflow',
                      HINT = 'infinity, BC dates and years after 9999 cannot be read back';
        END IF;
    END LOOP;
END $$;
