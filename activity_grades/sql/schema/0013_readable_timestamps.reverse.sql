-- Migration 0013_readable_timestamps, reverse (after every partition lost its trigger and
-- activity_grades_partition_ddl went back to v2, which does not create it).
DROP FUNCTION IF EXISTS activity_grades_readable();
