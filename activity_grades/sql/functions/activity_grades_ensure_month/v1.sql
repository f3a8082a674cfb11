-- activity_grades_ensure_month v1, installed by migration 0015_monthly_partitions.
-- The month table of (class, term) that holds the instant p_at, created if missing: a
-- child of the term's table (created too if missing), its CHECK the term's id and the
-- calendar month of p_at (activity_grades_month_bounds) clipped to the term's bounds as
-- the registry holds them, so every instant of the term has exactly one month table.
-- Its own CHECK is activity_grades_month_check (the month; the term's is inherited), the
-- rest of its DDL a term table's (activity_grades_partition_ddl after its CREATE TABLE:
-- keys, indexes, marker, triggers); registered in activity_grades_month. Race-safe like activity_grades_ensure_partition: one advisory
-- lock per (class, term), and the registry read again once it is held. A month archived
-- before (status 'archived'/'detached') is created again and goes back to 'live'.
CREATE OR REPLACE FUNCTION activity_grades_ensure_month(
    p_class_id text, p_term_id text, p_at timestamptz, OUT table_name text, OUT created boolean
) LANGUAGE plpgsql AS $$
DECLARE
    v_term_table text;
    v_term_starts timestamptz;
    v_term_ends timestamptz;
    v_starts timestamptz;
    v_ends timestamptz;
    v_label text;
    v_old text;
    v_status text;
    v_stmt text;
BEGIN
    IF p_class_id IS NULL OR p_term_id IS NULL OR p_at IS NULL THEN
        RAISE EXCEPTION 'activity_grades: a month partition needs a class, a term and an instant';
    END IF;
    created := false;
    FOR attempt IN 1..2 LOOP
        SELECT m.table_name INTO table_name FROM activity_grades_month m
         WHERE m.class_id = p_class_id AND m.term_id = p_term_id AND m.status = 'live'
           AND m.starts_at <= p_at AND p_at < m.ends_at;
        IF table_name IS NOT NULL THEN
            RETURN;
        END IF;
        EXIT WHEN attempt = 2;
        PERFORM pg_advisory_xact_lock(hashtextextended(
            'activity_grades:month:' || length(p_class_id) || ':' || p_class_id || '|'
            || p_term_id, 0));
    END LOOP;

    v_term_table := (activity_grades_ensure_partition(p_class_id, p_term_id)).table_name;
    SELECT p.starts_at, p.ends_at INTO v_term_starts, v_term_ends
      FROM activity_grades_partition p WHERE p.table_name = v_term_table;
    IF p_at < v_term_starts OR p_at >= v_term_ends THEN
        RAISE EXCEPTION 'activity_grades: % is outside term % [%, %)',
            p_at, quote_literal(p_term_id), v_term_starts, v_term_ends
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT b.starts_at, b.ends_at, b.label INTO v_starts, v_ends, v_label
      FROM activity_grades_month_bounds(p_at) b;
    v_starts := greatest(v_starts, v_term_starts);
    v_ends := least(v_ends, v_term_ends);

    SELECT m.table_name, m.status INTO v_old, v_status FROM activity_grades_month m
     WHERE m.class_id = p_class_id AND m.term_id = p_term_id AND m.starts_at = v_starts;
    IF v_status IS NOT NULL AND to_regclass(quote_ident(v_old)) IS NULL THEN
        table_name := v_old;  -- archived and dropped: the name is free again
    ELSE
        table_name := activity_grades_partition_name(p_class_id, p_term_id || '_m' || v_label);
    END IF;
    EXECUTE format(
        'CREATE TABLE %I (CONSTRAINT activity_grades_month_check CHECK (created_at >= %L::timestamptz '
        'AND created_at < %L::timestamptz)) INHERITS (%I)',
        table_name, v_starts, v_ends, v_term_table);
    FOR v_stmt IN SELECT d.stmt FROM activity_grades_partition_ddl(
        table_name, v_term_table, p_class_id, p_term_id, v_starts, v_ends)
        WITH ORDINALITY AS d(stmt, n) WHERE d.n > 1 ORDER BY d.n
    LOOP
        EXECUTE v_stmt;
    END LOOP;
    IF v_status IS NULL THEN
        INSERT INTO activity_grades_month
            (class_id, term_id, table_name, parent_table, starts_at, ends_at)
        VALUES (p_class_id, p_term_id, table_name, v_term_table, v_starts, v_ends);
    ELSE
        UPDATE activity_grades_month m
           SET table_name = activity_grades_ensure_month.table_name,
               parent_table = v_term_table, ends_at = v_ends, status = 'live'
         WHERE m.class_id = p_class_id AND m.term_id = p_term_id AND m.starts_at = v_starts;
    END IF;
    created := true;
END $$;
