"""``activity_grades_partition_name`` v2: safe against sessions creating partitions at once.

Fixed SQL text (never built from live code): an edited function gets a new migration.

v1 had two races, both seen under load in
``test_concurrent_writers_while_create_partitions_runs``:

- A caller asking for the name of a pair that another session had just created
  (``create_partitions`` planning while a writer creates the same partition on demand)
  saw the new table in the catalog before its registry row was visible to its
  statement's snapshot, and raised "partition name ... is taken". A name that is taken
  *by the same (class, term)* is now returned, not refused: the function is VOLATILE
  so the registry is read with a snapshot taken after the catalog check.
- Two sessions creating *different* pairs whose readable names coincide (class
  ``a_term_b`` and class ``a`` with term ``b``) both found the name free and one
  failed on CREATE TABLE. Each candidate name is now locked (advisory, to the end of
  the transaction) before it is checked, so the second session waits and then
  takes the hashed name.
"""

from django.db import migrations

NAME_V2 = r"""
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
"""

# The reverse restores the 0001 text exactly.
NAME_V1 = r"""
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
"""


class Migration(migrations.Migration):
    dependencies = [("activity_grades", "0003_archive")]

    operations = [migrations.RunSQL(NAME_V2, NAME_V1)]
