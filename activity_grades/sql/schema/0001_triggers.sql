-- Migration 0001_initial: the parent's triggers, after the trigger functions
-- (functions/activity_grades_{route,move,keys_*,no_truncate}/v1.sql).

CREATE TRIGGER activity_grades_route BEFORE INSERT ON activity_grades
    FOR EACH ROW EXECUTE FUNCTION activity_grades_route();

-- Statement triggers fire only on the table a statement names, and their transition
-- tables hold the rows of every child it reached: a DELETE through the parent (what
-- Django issues) is seen here, one through a partition by that partition's trigger.
CREATE TRIGGER activity_grades_keys_delete AFTER DELETE ON activity_grades
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION activity_grades_keys_delete();
CREATE TRIGGER activity_grades_no_truncate BEFORE TRUNCATE ON activity_grades
    FOR EACH STATEMENT EXECUTE FUNCTION activity_grades_no_truncate();
