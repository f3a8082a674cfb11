-- activity_grades_route v4, installed by migration 0011_guard_rails.
-- v4 (issue 12): the trigger refuses what would misfile a grade or break reading it back,
-- with the text the Python paths raise (activity_grades.core.rules):
-- - a timestamp that cannot be read back (infinite, before year 1 or from year 10000,
--   in UTC) in any timestamp column (SQLSTATE 22008, datetime_field_overflow);
-- - a class_id that is not the activity's class (23514, check_violation): the activity is
--   now always looked up, also when the caller names the class;
-- - a term_id that is not the term of created_at (23514): the term is derived from the
--   value as stored (timestamptz(3), already rounded here), latest start winning.
-- Otherwise as v3.
CREATE OR REPLACE FUNCTION activity_grades_route() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_table text;
    v_class text;
    v_term text;
BEGIN
    -- One comparison per column on the common path; the function names the column.
    IF NOT (NEW.created_at >= '0001-01-01 00:00:00+00' AND NEW.created_at < '10000-01-01 00:00:00+00'
            AND NEW.updated_at >= '0001-01-01 00:00:00+00' AND NEW.updated_at < '10000-01-01 00:00:00+00'
            AND NEW.submitted_at >= '0001-01-01 00:00:00+00' AND NEW.submitted_at < '10000-01-01 00:00:00+00'
            AND coalesce(NEW.graded_at >= '0001-01-01 00:00:00+00'
                         AND NEW.graded_at < '10000-01-01 00:00:00+00', true)
            AND coalesce(NEW.commitment_deadline >= '0001-01-01 00:00:00+00'
                         AND NEW.commitment_deadline < '10000-01-01 00:00:00+00', true))
    THEN
        PERFORM activity_grades_check_timestamps(NEW);
    END IF;
    SELECT l.class_id, l.term_id INTO v_class, v_term
      FROM activity_grades_locate(NEW.activity_id, NEW.created_at) l;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'activity_grades: activity % does not exist',
            quote_literal(NEW.activity_id)
            USING ERRCODE = 'foreign_key_violation',
                  HINT = 'create the activity before grading it';
    ELSIF v_class IS NULL THEN
        RAISE EXCEPTION 'activity_grades: activity % has no class',
            quote_literal(NEW.activity_id)
            USING ERRCODE = 'not_null_violation',
                  HINT = 'give the activity a class before grading it: grades are '
                         'partitioned by class';
    END IF;
    IF NEW.class_id IS NOT NULL OR NEW.term_id IS NOT NULL THEN
        PERFORM activity_grades_check_placement(NEW, v_class, v_term);
    END IF;
    NEW.class_id := v_class;
    NEW.term_id := v_term;
    IF NEW.term_id IS NULL THEN
        SELECT p.table_name INTO v_table FROM activity_grades_partition p
         WHERE p.class_id = NEW.class_id AND p.term_id IS NULL AND p.status = 'live';
    ELSE
        SELECT p.table_name INTO v_table FROM activity_grades_partition p
         WHERE p.class_id = NEW.class_id AND p.term_id = NEW.term_id AND p.status = 'live';
    END IF;
    IF v_table IS NULL THEN
        v_table := (activity_grades_ensure_partition(NEW.class_id, NEW.term_id)).table_name;
    END IF;
    IF NOT activity_grades_insert_into(v_table, NEW) THEN
        EXECUTE format('INSERT INTO %I SELECT ($1).*', v_table) USING NEW;
    END IF;
    RETURN NULL;
END $$;
