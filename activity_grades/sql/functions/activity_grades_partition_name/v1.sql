-- activity_grades_partition_name v1, installed by migration 0001_initial.
-- A readable name when both ids are simple and the name is free; otherwise a
-- truncated slug plus a hash of the exact ids. Names are ASCII, so 63 characters
-- are 63 bytes. The registry, not this function, is the source of truth.
CREATE OR REPLACE FUNCTION activity_grades_partition_name(p_class_id text, p_term_id text)
RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
    c text := activity_grades_slug(p_class_id);
    t text := activity_grades_slug(p_term_id);
    readable text;
    hashed text;
    h text := substr(md5(length(p_class_id) || ':' || p_class_id || '|'
                         || coalesce(length(p_term_id) || ':' || p_term_id, '-')), 1, 10);
BEGIN
    readable := 'activity_grades_class_' || c || coalesce('_term_' || t, '');
    IF c = p_class_id AND c <> ''
       AND (p_term_id IS NULL OR (t = p_term_id AND t <> ''))
       AND length(readable) <= 63
       AND NOT EXISTS (SELECT 1 FROM activity_grades_partition WHERE table_name = readable)
       AND to_regclass(quote_ident(readable)) IS NULL
    THEN
        RETURN readable;
    END IF;
    IF p_term_id IS NULL THEN
        hashed := 'activity_grades_class_' || left(c, 30) || '_' || h;
    ELSE
        hashed := 'activity_grades_class_' || left(c, 12) || '_term_' || left(t, 12) || '_' || h;
    END IF;
    IF EXISTS (SELECT 1 FROM activity_grades_partition WHERE table_name = hashed)
       OR to_regclass(quote_ident(hashed)) IS NOT NULL THEN
        RAISE EXCEPTION 'activity_grades: partition name % for class % term % is taken',
            hashed, quote_literal(p_class_id), coalesce(quote_literal(p_term_id), 'NULL');
    END IF;
    RETURN hashed;
END $$;
