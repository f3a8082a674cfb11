-- Reverse of migration 0012_archive_chunks (archive_year v1 and the search_path of 0009
-- are loaded after this file). The migration's RefuseDataLoss runs first: while
-- compressed chunks hold grades it refuses (unless ACTIVITY_GRADES_ALLOW_DATA_LOSS=1),
-- since dropping them destroys grades.
DROP VIEW archived_activity_grades;
DROP TABLE activity_grades_archive_year;
DROP TABLE archived_activity_grades_chunk;
ALTER TABLE activity_grades_archive_rows_year RENAME TO activity_grades_archive_year;
ALTER TABLE archived_activity_grades_rows RENAME TO archived_activity_grades;
COMMENT ON TABLE archived_activity_grades IS 'activity_grades:archive-parent';
COMMENT ON TABLE activity_grades_archive_year IS 'activity_grades:archive-registry';
