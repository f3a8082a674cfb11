-- Reverse of migration 0018_class_moves. Refuses while a move is unfinished: its capture
-- triggers and the target's tables would be left behind with nothing to finish them.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM activity_grades_move_state) THEN
        RAISE EXCEPTION 'a move_class is unfinished: finish it or run move_class --abort first';
    END IF;
    IF EXISTS (SELECT 1 FROM activity_grades_placement WHERE decided_by = 'move') THEN
        UPDATE activity_grades_placement SET decided_by = 'place' WHERE decided_by = 'move';
    END IF;
END $$;
ALTER TABLE activity_grades_placement
    DROP CONSTRAINT activity_grades_placement_decided_by_check,
    ADD CONSTRAINT activity_grades_placement_decided_by_check
        CHECK (decided_by IN ('setting', 'hash', 'default', 'existing', 'place'));
DROP TABLE activity_grades_move_log;
DROP TABLE activity_grades_move_state;
DROP FUNCTION activity_grades_move_capture();
