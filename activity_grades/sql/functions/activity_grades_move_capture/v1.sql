-- activity_grades_move_capture v1, installed by migration 0018_class_moves.
-- manage.py move_class copies a class to another server while the LMS keeps writing it:
-- for the copy's duration each of the class's tables on the coordinator (local tables or
-- foreign ones) carries this row trigger, which notes the id of every row written, so the
-- move copies those rows again instead of comparing the whole class. TG_ARGV[0] is the
-- moving class (a row moved to another class is noted under the moving one: it left it).
-- Every write adds a row (no ON CONFLICT): the move deletes exactly the entries it read,
-- so a write that commits while an id is being copied stays noted for the next round.
CREATE OR REPLACE FUNCTION activity_grades_move_capture() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO activity_grades_move_log (class_id, id) VALUES (TG_ARGV[0], OLD.id);
    END IF;
    IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR NEW.id IS DISTINCT FROM OLD.id) THEN
        INSERT INTO activity_grades_move_log (class_id, id) VALUES (TG_ARGV[0], NEW.id);
    END IF;
    RETURN NULL;
END $$;
