-- Reverse of migration 0008_conversion.
DROP TABLE IF EXISTS activity_grades_conversion_moved;
DROP TABLE IF EXISTS activity_grades_conversion;
