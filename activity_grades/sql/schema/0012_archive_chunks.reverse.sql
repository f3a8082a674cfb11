-- Reverse of migration 0012_archive_chunks (archive_year v1 and the search_path of 0009
-- are loaded after this file). Refuses while compressed chunks hold grades: dropping
-- them would destroy grades. Restore them (manage.py restore_grades) or convert them
-- back to rows (manage.py compress_archive --to rows) first.
DO $$
DECLARE
    n bigint;
BEGIN
    SELECT coalesce(sum(row_count), 0) INTO n FROM archived_activity_grades_chunk;
    IF n > 0 THEN
        RAISE EXCEPTION 'activity_grades: % archived grades are stored in compressed chunks; '
                        'migrating back before 0012 would destroy them. Run manage.py '
                        'compress_archive --to rows (or restore_grades), then migrate back '
                        'again. Nothing was changed.', n;
    END IF;
END $$;

DROP VIEW archived_activity_grades;
DROP TABLE activity_grades_archive_year;
DROP TABLE archived_activity_grades_chunk;
ALTER TABLE activity_grades_archive_rows_year RENAME TO activity_grades_archive_year;
ALTER TABLE archived_activity_grades_rows RENAME TO archived_activity_grades;
COMMENT ON TABLE archived_activity_grades IS 'activity_grades:archive-parent';
COMMENT ON TABLE activity_grades_archive_year IS 'activity_grades:archive-registry';
