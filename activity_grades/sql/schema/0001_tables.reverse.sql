-- Reverse of 0001_tables.sql.

DROP TABLE IF EXISTS activity_grades_partition;
DROP TABLE IF EXISTS activity_grades_key;
DROP TABLE IF EXISTS activity_grades CASCADE;
