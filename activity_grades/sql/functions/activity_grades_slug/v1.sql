-- activity_grades_slug v1, installed by migration 0001_initial.
-- Lower-case ASCII letters, digits and single underscores.
CREATE OR REPLACE FUNCTION activity_grades_slug(p text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT trim(both '_' from lower(regexp_replace(p, '[^A-Za-z0-9]+', '_', 'g')))
$$;
