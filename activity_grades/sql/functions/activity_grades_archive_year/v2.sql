-- activity_grades_archive_year v2, installed by migration 0012_archive_chunks.
-- Find or create the compressed (chunk) archive table of one academic year, a partition
-- of archived_activity_grades_chunk; safe when sessions race. v1 created the row-per-grade
-- table of today's archive (archived_activity_grades_rows since 0012).
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

    table_name := 'archived_activity_grades_c_' || s;
    IF s <> p_year OR s = '' OR length(table_name) > 63
       OR to_regclass(quote_ident(table_name)) IS NOT NULL THEN
        table_name := 'archived_activity_grades_c_' || left(s, 20) || '_'
                      || substr(md5(p_year), 1, 10);
    END IF;
    -- The parent's primary key, (class, term) and GIN student indexes and column
    -- compression come with the partition.
    EXECUTE format('CREATE TABLE %I PARTITION OF archived_activity_grades_chunk '
                   'FOR VALUES IN (%L) WITH (fillfactor = 100)', table_name, p_year);
    EXECUTE format('COMMENT ON TABLE %I IS %L', table_name, 'activity_grades:archive');
    INSERT INTO activity_grades_archive_year (academic_year, table_name)
    VALUES (p_year, table_name);
    created := true;
END $$;
