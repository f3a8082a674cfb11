-- Migration 0001_initial, reverse of the lookup stubs
-- (functions/activity_grades_{class_of,term_at,term_bounds}/v1.sql).

DROP FUNCTION IF EXISTS activity_grades_class_of(text);
DROP FUNCTION IF EXISTS activity_grades_term_at(timestamptz);
DROP FUNCTION IF EXISTS activity_grades_term_bounds(text);
