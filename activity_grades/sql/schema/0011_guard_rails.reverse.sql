-- Migration 0011_guard_rails, reverse (after the routing, move and partition functions
-- went back to their 0009 versions, which call neither of these).
DROP FUNCTION IF EXISTS activity_grades_check_placement(activity_grades, text, text);
DROP FUNCTION IF EXISTS activity_grades_check_timestamps(activity_grades);
