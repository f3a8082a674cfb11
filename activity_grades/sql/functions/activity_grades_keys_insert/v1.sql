-- activity_grades_keys_insert v1, installed by migration 0001_initial.
CREATE OR REPLACE FUNCTION activity_grades_keys_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO activity_grades_key (id, activity_id, student_id, class_id, term_id)
    SELECT id, activity_id, student_id, class_id, term_id FROM new_rows;
    RETURN NULL;
END $$;
