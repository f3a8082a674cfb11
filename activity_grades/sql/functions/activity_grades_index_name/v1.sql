-- activity_grades_index_name v1, installed by migration 0001_initial.
-- Index names derived from a table name, kept within 63 bytes and unique.
CREATE OR REPLACE FUNCTION activity_grades_index_name(p_table text, p_suffix text)
RETURNS text LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE
        WHEN length(p_table) + 1 + length(p_suffix) <= 63 THEN p_table || '_' || p_suffix
        ELSE left(p_table, 63 - length(p_suffix) - 10) || '_' || substr(md5(p_table), 1, 8)
             || '_' || p_suffix
    END
$$;
