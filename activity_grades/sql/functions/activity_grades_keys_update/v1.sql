-- activity_grades_keys_update v1, installed by migration 0001_initial.
CREATE OR REPLACE FUNCTION activity_grades_keys_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE activity_grades_key
       SET id = NEW.id, activity_id = NEW.activity_id, student_id = NEW.student_id
     WHERE id = OLD.id;
    RETURN NULL;
END $$;
