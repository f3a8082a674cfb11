-- Reverse of the trigger functions and of 0001_triggers.sql.

DROP TRIGGER IF EXISTS activity_grades_route ON activity_grades;
DROP TRIGGER IF EXISTS activity_grades_keys_delete ON activity_grades;
DROP TRIGGER IF EXISTS activity_grades_no_truncate ON activity_grades;
DROP FUNCTION IF EXISTS activity_grades_route();
DROP FUNCTION IF EXISTS activity_grades_move() CASCADE;
DROP FUNCTION IF EXISTS activity_grades_keys_insert() CASCADE;
DROP FUNCTION IF EXISTS activity_grades_keys_delete() CASCADE;
DROP FUNCTION IF EXISTS activity_grades_keys_update() CASCADE;
DROP FUNCTION IF EXISTS activity_grades_no_truncate() CASCADE;
