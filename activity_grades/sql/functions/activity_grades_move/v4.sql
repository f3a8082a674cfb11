-- activity_grades_move v4, installed by migration 0015_monthly_partitions.
-- v4 (issue 15): month tables. A row of a month table whose created_at leaves the month
-- (same class and term) moves to the month table of its new created_at; a row that moves
-- to a term of granularity 'month' goes to that term's month table, not the term table.
-- A row of a term table whose term became 'month' stays until regranulated.
-- Otherwise as v3.
CREATE OR REPLACE FUNCTION activity_grades_move() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_table text;
    v_class text;
    v_term text;
    v_given activity_grades;
    v_starts timestamptz;
    v_ends timestamptz;
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
        IF NEW.created_at = OLD.created_at THEN
            RETURN NEW;  -- still belongs here: the common case of a save() from Django
        END IF;
        SELECT m.starts_at, m.ends_at INTO v_starts, v_ends
          FROM activity_grades_month m WHERE m.table_name = TG_TABLE_NAME;
        IF NOT FOUND OR (NEW.created_at >= v_starts AND NEW.created_at < v_ends) THEN
            RETURN NEW;  -- a term or class table, or the same month
        END IF;
    END IF;
    v_table := (activity_grades_ensure_partition(NEW.class_id, NEW.term_id)).table_name;
    IF NEW.term_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM activity_grades_partition p
         WHERE p.table_name = v_table AND p.granularity = 'month')
    THEN
        v_table := (activity_grades_ensure_month(NEW.class_id, NEW.term_id, NEW.created_at))
                   .table_name;
    END IF;
    IF v_table = TG_TABLE_NAME THEN
        RETURN NEW;
    END IF;
    EXECUTE format('DELETE FROM ONLY %I.%I WHERE id = $1', TG_TABLE_SCHEMA, TG_TABLE_NAME)
        USING OLD.id;
    EXECUTE format('INSERT INTO %I SELECT ($1).*', v_table) USING NEW;
    RETURN NULL;
END $$;
