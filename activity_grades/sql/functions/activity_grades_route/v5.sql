-- activity_grades_route v5, installed by migration 0015_monthly_partitions.
-- v5 (issue 15): a term whose registry row says granularity 'month' files its grades in
-- month tables, children of the term table (activity_grades_ensure_month finds or
-- creates the one of created_at); a term of granularity 'term' (every term before 0015)
-- is a leaf as before. Otherwise as v4.
CREATE OR REPLACE FUNCTION activity_grades_route() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_table text;
    v_class text;
    v_term text;
    v_granularity text;
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
        SELECT p.table_name, p.granularity INTO v_table, v_granularity
          FROM activity_grades_partition p
         WHERE p.class_id = NEW.class_id AND p.term_id = NEW.term_id AND p.status = 'live';
    END IF;
    IF v_table IS NULL THEN
        v_table := (activity_grades_ensure_partition(NEW.class_id, NEW.term_id)).table_name;
        IF NEW.term_id IS NOT NULL THEN
            SELECT p.granularity INTO v_granularity FROM activity_grades_partition p
             WHERE p.table_name = v_table;
        END IF;
    END IF;
    IF v_granularity = 'month' THEN
        v_table := (activity_grades_ensure_month(NEW.class_id, NEW.term_id, NEW.created_at))
                   .table_name;
    END IF;
    IF NOT activity_grades_insert_into(v_table, NEW) THEN
        EXECUTE format('INSERT INTO %I SELECT ($1).*', v_table) USING NEW;
    END IF;
    RETURN NULL;
END $$;
