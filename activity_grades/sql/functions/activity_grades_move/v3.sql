-- activity_grades_move v3, installed by migration 0011_guard_rails.
-- v3 (issue 12): an UPDATE of a routing column obeys the rule of activity_grades_route v4:
-- timestamps that can be read back; a class_id or term_id set by the UPDATE must be the
-- activity's class and created_at's term (activity_grades_check_placement); class and
-- term are then always the derived ones (one lookup, activity_grades_locate). Otherwise as
-- v2: a row that now belongs elsewhere moves there.
CREATE OR REPLACE FUNCTION activity_grades_move() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_table text;
    v_class text;
    v_term text;
    v_given activity_grades;
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
            quote_literal(NEW.activity_id) USING ERRCODE = 'foreign_key_violation';
    ELSIF v_class IS NULL THEN
        RAISE EXCEPTION 'activity_grades: activity % has no class',
            quote_literal(NEW.activity_id) USING ERRCODE = 'not_null_violation';
    END IF;
    -- Only values this UPDATE set are the caller's; unchanged ones are re-derived.
    v_given := NEW;
    IF NEW.class_id IS NOT DISTINCT FROM OLD.class_id THEN
        v_given.class_id := NULL;
    END IF;
    IF NEW.term_id IS NOT DISTINCT FROM OLD.term_id THEN
        v_given.term_id := NULL;
    END IF;
    IF v_given.class_id IS NOT NULL OR v_given.term_id IS NOT NULL THEN
        PERFORM activity_grades_check_placement(v_given, v_class, v_term);
    END IF;
    NEW.class_id := v_class;
    NEW.term_id := v_term;
    IF NEW.class_id = OLD.class_id AND NEW.term_id IS NOT DISTINCT FROM OLD.term_id THEN
        RETURN NEW;  -- still belongs here: the common case of a save() from Django
    END IF;
    v_table := (activity_grades_ensure_partition(NEW.class_id, NEW.term_id)).table_name;
    IF v_table = TG_TABLE_NAME THEN
        RETURN NEW;
    END IF;
    EXECUTE format('DELETE FROM ONLY %I.%I WHERE id = $1', TG_TABLE_SCHEMA, TG_TABLE_NAME)
        USING OLD.id;
    EXECUTE format('INSERT INTO %I SELECT ($1).*', v_table) USING NEW;
    RETURN NULL;
END $$;
