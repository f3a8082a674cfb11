-- activity_grades_archive_year v1, installed by migration 0003_archive.
-- Find or create the archive table of one academic year; safe when sessions race.
CREATE OR REPLACE FUNCTION activity_grades_archive_year(p_year text, OUT table_name text, OUT created boolean)
LANGUAGE plpgsql AS $$
DECLARE
    s text := activity_grades_slug(p_year);
BEGIN
    IF p_year IS NULL OR p_year = '' THEN
        RAISE EXCEPTION 'activity_grades: cannot archive rows without an academic year';
    END IF;
    created := false;
    SELECT y.table_name INTO table_name FROM activity_grades_archive_year y
     WHERE y.academic_year = p_year;
    IF FOUND THEN RETURN; END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('activity_grades:archive-year|' || p_year, 0));
    SELECT y.table_name INTO table_name FROM activity_grades_archive_year y
     WHERE y.academic_year = p_year;
    IF FOUND THEN RETURN; END IF;

    table_name := 'archived_activity_grades_y_' || s;
    IF s <> p_year OR s = '' OR length(table_name) > 63
       OR to_regclass(quote_ident(table_name)) IS NOT NULL THEN
        table_name := 'archived_activity_grades_y_' || left(s, 20) || '_'
                      || substr(md5(p_year), 1, 10);
    END IF;
    EXECUTE format('CREATE TABLE %I PARTITION OF archived_activity_grades FOR VALUES IN (%L) '
                   'WITH (fillfactor = 100, toast_tuple_target = 128)', table_name, p_year);
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I PRIMARY KEY (id)',
                   table_name, activity_grades_index_name(table_name, 'pkey'));
    -- Compress medium values in line rather than moving them out to TOAST.
    EXECUTE format('ALTER TABLE %I ALTER COLUMN feedback SET STORAGE MAIN, '
                   'ALTER COLUMN content SET STORAGE MAIN, '
                   'ALTER COLUMN attachments SET STORAGE MAIN', table_name);
    EXECUTE format('COMMENT ON TABLE %I IS %L', table_name, 'activity_grades:archive');
    INSERT INTO activity_grades_archive_year (academic_year, table_name)
    VALUES (p_year, table_name);
    created := true;
END $$;
