-- activity_grades_ensure_partition v1, installed by migration 0001_initial.
-- Find or create the partition for (class, term); term NULL means the class table.
-- Safe when sessions race: one creates, the others wait on the advisory lock and
-- then find it. The lock is held to the end of the creating transaction.
CREATE OR REPLACE FUNCTION activity_grades_ensure_partition(
    p_class_id text, p_term_id text, OUT table_name text, OUT created boolean
) LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
    v_parent text;
    v_starts timestamptz;
    v_ends timestamptz;
    v_year text;
    v_stmt text;
BEGIN
    IF p_class_id IS NULL THEN
        RAISE EXCEPTION 'activity_grades: a grade needs a class (class_id is NULL)';
    END IF;
    created := false;
    FOR attempt IN 1..2 LOOP
        SELECT p.table_name, p.status INTO table_name, v_status
          FROM activity_grades_partition p
         WHERE p.class_id = p_class_id AND p.term_id IS NOT DISTINCT FROM p_term_id;
        IF v_status = 'live' THEN
            RETURN;
        ELSIF v_status IS NOT NULL THEN
            RAISE EXCEPTION 'activity_grades: partition % for class % term % is %',
                table_name, quote_literal(p_class_id), coalesce(quote_literal(p_term_id), 'NULL'),
                v_status
                USING HINT = 'restore it (manage.py restore_grades) before writing to it';
        END IF;
        EXIT WHEN attempt = 2;
        PERFORM pg_advisory_xact_lock(hashtextextended(
            'activity_grades:' || length(p_class_id) || ':' || p_class_id || '|'
            || coalesce(p_term_id, '<class>'), 0));
    END LOOP;

    IF p_term_id IS NULL THEN
        v_parent := 'activity_grades';
    ELSE
        SELECT b.starts_at, b.ends_at, b.academic_year INTO v_starts, v_ends, v_year
          FROM activity_grades_term_bounds(p_term_id) b;
        IF v_starts IS NULL THEN
            RAISE EXCEPTION 'activity_grades: term % does not exist', quote_literal(p_term_id)
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        v_parent := (activity_grades_ensure_partition(p_class_id, NULL)).table_name;
    END IF;

    table_name := activity_grades_partition_name(p_class_id, p_term_id);
    FOR v_stmt IN SELECT activity_grades_partition_ddl(
        table_name, v_parent, p_class_id, p_term_id, v_starts, v_ends)
    LOOP
        EXECUTE v_stmt;
    END LOOP;
    INSERT INTO activity_grades_partition
        (class_id, term_id, table_name, parent_table, starts_at, ends_at, academic_year)
    VALUES (p_class_id, p_term_id, table_name, v_parent,
            v_starts, v_ends, v_year);
    created := true;

    IF p_term_id IS NOT NULL THEN
        -- Rows that arrived before the term was known wait in the class table:
        -- setting their term moves them here through activity_grades_move().
        EXECUTE format('UPDATE ONLY %I SET term_id = $1 '
                       'WHERE created_at >= $2 AND created_at < $3', v_parent)
            USING p_term_id, v_starts, v_ends;
    END IF;
END $$;
