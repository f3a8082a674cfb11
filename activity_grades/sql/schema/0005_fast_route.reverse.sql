-- Migration 0005_fast_route, reverse (after functions/activity_grades_route/v1.sql
-- restores the routing trigger).

DROP FUNCTION IF EXISTS activity_grades_insert_into(text, activity_grades);
DROP FUNCTION IF EXISTS activity_grades_locate(text, timestamptz);
