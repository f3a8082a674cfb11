-- activity_grades_keys_delete v1, installed by migration 0001_initial.
CREATE OR REPLACE FUNCTION activity_grades_keys_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM activity_grades_key k USING old_rows o WHERE k.id = o.id;
    RETURN NULL;
END $$;
