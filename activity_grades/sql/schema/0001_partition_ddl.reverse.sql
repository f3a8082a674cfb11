-- Migration 0001_initial, reverse of
-- functions/activity_grades_{partition_ddl,ensure_partition}/v1.sql.

DROP FUNCTION IF EXISTS activity_grades_ensure_partition(text, text);
DROP FUNCTION IF EXISTS activity_grades_partition_ddl(text, text, text, text, timestamptz, timestamptz);
