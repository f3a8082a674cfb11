-- Reverse of 0003_archive.sql and of functions/activity_grades_archive_year/v1.sql.

DROP TABLE IF EXISTS activity_grades_maintenance_run;
DROP FUNCTION IF EXISTS activity_grades_archive_year(text);
DROP TABLE IF EXISTS activity_grades_archive_year;
DROP TABLE IF EXISTS archived_activity_grades CASCADE;
