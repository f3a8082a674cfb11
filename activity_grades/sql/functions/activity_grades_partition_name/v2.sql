-- activity_grades_partition_name v2, installed by migration 0004_partition_name_race.
-- v2: safe when sessions create partitions at once. A name taken by the same
-- (class, term) is returned, not refused (VOLATILE: the registry is read with a
-- snapshot newer than the catalog check), and every candidate name is locked
-- before it is checked. Details: migration 0004_partition_name_race.
CREATE OR REPLACE FUNCTION activity_grades_partition_name(p_class_id text, p_term_id text)
RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    c text := activity_grades_slug(p_class_id);
    t text := activity_grades_slug(p_term_id);
    h text := substr(md5(length(p_class_id) || ':' || p_class_id || '|'
                         || coalesce(length(p_term_id) || ':' || p_term_id, '-')), 1, 10);
    candidate text;
    owner_class text;
    owner_term text;
BEGIN
    FOR pass IN 1..2 LOOP
        IF pass = 1 THEN
            candidate := 'activity_grades_class_' || c || coalesce('_term_' || t, '');
            CONTINUE WHEN c <> p_class_id OR c = ''
                OR (p_term_id IS NOT NULL AND (t <> p_term_id OR t = ''))
                OR length(candidate) > 63;
        ELSIF p_term_id IS NULL THEN
            candidate := 'activity_grades_class_' || left(c, 30) || '_' || h;
        ELSE
            candidate := 'activity_grades_class_' || left(c, 12) || '_term_' || left(t, 12)
                         || '_' || h;
        END IF;
        -- Held to the end of the transaction: whoever creates a table under this name
        -- has committed (or rolled back) before a second claimant looks.
        PERFORM pg_advisory_xact_lock(hashtextextended('activity_grades:name|' || candidate, 0));
        IF to_regclass(quote_ident(candidate)) IS NULL
           AND NOT EXISTS (SELECT 1 FROM activity_grades_partition p
                            WHERE p.table_name = candidate) THEN
            RETURN candidate;
        END IF;
        -- Taken. This statement's snapshot is newer than the catalog check above, so
        -- a table committed with its registry row shows its owner here.
        SELECT p.class_id, p.term_id INTO owner_class, owner_term
          FROM activity_grades_partition p
         WHERE p.table_name = candidate AND p.status = 'live';
        IF FOUND AND owner_class = p_class_id AND owner_term IS NOT DISTINCT FROM p_term_id THEN
            RETURN candidate;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'activity_grades: partition name % for class % term % is taken',
        candidate, quote_literal(p_class_id), coalesce(quote_literal(p_term_id), 'NULL')
        USING HINT = 'a table of that name exists outside the registry: '
                     'inspect it before dropping it';
END $$;
