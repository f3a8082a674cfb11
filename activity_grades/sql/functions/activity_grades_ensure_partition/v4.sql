-- activity_grades_ensure_partition v4, installed by migration 0017_sharded_on_demand.
-- v4 (issue 16): a class placed on a shard (activity_grades_placement) gets no partition on
-- demand: its tables live on the shard and are made by manage.py create_partitions, which
-- this function cannot do (it runs inside the routing trigger, on the coordinator). v3 made
-- a local table, so the class's grades were silently kept on the wrong server (E038). Now
-- the write fails with an error naming the shard and what to run. A sharded class whose
-- class table was already made locally keeps growing locally (reported as E038 until
-- move_class moves it). Otherwise as v3:
-- v3 (issue 12): rows waiting in the class table are adopted only by the term their
-- created_at belongs to (activity_grades_term_at: latest start wins where terms overlap),
-- as the routing trigger files new rows; v2 took every row in the new term's range, so an
-- earlier-starting overlapping term took rows that routing sends to the later one.
-- Otherwise as v2:
-- v2: status 'archived'/'detached' of a term table no longer raises: the live table is
-- created again (under a new name when a detached copy still holds the old one) and the
-- registry row goes back to 'live'. Class tables are never archived, so they still raise.
CREATE OR REPLACE FUNCTION activity_grades_ensure_partition(
    p_class_id text, p_term_id text, OUT table_name text, OUT created boolean
) LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
    v_old text;
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
        SELECT p.table_name, p.status INTO v_old, v_status
          FROM activity_grades_partition p
         WHERE p.class_id = p_class_id AND p.term_id IS NOT DISTINCT FROM p_term_id;
        IF v_status = 'live' THEN
            table_name := v_old;
            RETURN;
        ELSIF v_status IS NOT NULL AND p_term_id IS NULL THEN
            RAISE EXCEPTION 'activity_grades: class table % of class % is %',
                v_old, quote_literal(p_class_id), v_status;
        END IF;
        EXIT WHEN attempt = 2;
        PERFORM pg_advisory_xact_lock(hashtextextended(
            'activity_grades:' || length(p_class_id) || ':' || p_class_id || '|'
            || coalesce(p_term_id, '<class>'), 0));
    END LOOP;

    IF EXISTS (SELECT 1 FROM activity_grades_placement pl
                WHERE pl.class_id = p_class_id AND pl.shard <> 'local')
       AND NOT EXISTS (SELECT 1 FROM activity_grades_partition p
                        JOIN pg_class c ON c.oid = to_regclass(quote_ident(p.table_name))
                       WHERE p.class_id = p_class_id AND p.term_id IS NULL
                         AND p.status = 'live' AND c.relkind = 'r') THEN
        RAISE EXCEPTION 'activity_grades: class % is placed on shard %, and its partition for % '
            'does not exist yet', quote_literal(p_class_id),
            (SELECT quote_literal(pl.shard) FROM activity_grades_placement pl
              WHERE pl.class_id = p_class_id),
            coalesce('term ' || quote_literal(p_term_id), 'grades outside every term')
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'partitions of a sharded class are made on its shard by manage.py '
                         'create_partitions (the maintenance job premakes the current and '
                         'upcoming terms), never on demand';
    END IF;

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

    IF v_status IS NOT NULL AND to_regclass(quote_ident(v_old)) IS NULL THEN
        table_name := v_old;  -- archived and dropped: the name is free again
    ELSE
        table_name := activity_grades_partition_name(p_class_id, p_term_id);
    END IF;
    FOR v_stmt IN SELECT activity_grades_partition_ddl(
        table_name, v_parent, p_class_id, p_term_id, v_starts, v_ends)
    LOOP
        EXECUTE v_stmt;
    END LOOP;
    IF v_status IS NULL THEN
        INSERT INTO activity_grades_partition
            (class_id, term_id, table_name, parent_table, starts_at, ends_at, academic_year)
        VALUES (p_class_id, p_term_id, table_name, v_parent,
                v_starts, v_ends, v_year);
    ELSE
        UPDATE activity_grades_partition p
           SET table_name = activity_grades_ensure_partition.table_name, parent_table = v_parent,
               starts_at = v_starts, ends_at = v_ends, academic_year = v_year, status = 'live'
         WHERE p.class_id = p_class_id AND p.term_id = p_term_id;
        RAISE NOTICE 'activity_grades: partition % of % term % was %; created it again',
            table_name, quote_literal(p_class_id), quote_literal(p_term_id), v_status;
    END IF;
    created := true;

    IF p_term_id IS NOT NULL THEN
        -- Rows that arrived before the term was known wait in the class table:
        -- setting their term moves them here through activity_grades_move().
        EXECUTE format('UPDATE ONLY %I SET term_id = $1 '
                       'WHERE created_at >= $2 AND created_at < $3 '
                       'AND activity_grades_term_at(created_at) = $1', v_parent)
            USING p_term_id, v_starts, v_ends;
    END IF;
END $$;
