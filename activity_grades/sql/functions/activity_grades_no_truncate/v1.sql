-- activity_grades_no_truncate v1, installed by migration 0001_initial.
CREATE OR REPLACE FUNCTION activity_grades_no_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'activity_grades: TRUNCATE of % would leave the key index stale',
        TG_TABLE_NAME
        USING HINT = 'delete rows, or archive the term with manage.py archive_grades';
END $$;
