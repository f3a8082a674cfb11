-- Migration 0001_initial, reverse of the naming functions
-- (functions/activity_grades_{slug,partition_name,index_name}/v1.sql).

DROP FUNCTION IF EXISTS activity_grades_index_name(text, text);
DROP FUNCTION IF EXISTS activity_grades_partition_name(text, text);
DROP FUNCTION IF EXISTS activity_grades_slug(text);
