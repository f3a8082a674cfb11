-- CANDIDATE (not installed by the app): a routing trigger whose per-row INSERT is
-- static SQL with a cached plan. Each leaf gets a tiny function
--     activity_grades_index_name(<leaf>, 'ins')(r activity_grades)
-- holding `INSERT INTO <leaf> SELECT (r).*`; the parent trigger only EXECUTEs
-- `SELECT <fn>($1)`, which is much cheaper to parse and plan than an INSERT into a
-- table with 4 indexes, 5 triggers and a CHECK. Every guarantee is kept: the leaf
-- insert fires the same key-index trigger (global uniqueness), partitions are still
-- created on demand (and a leaf without its function falls back to the current
-- dynamic INSERT), nothing is kept in the parent (RETURN NULL).
-- In the app, activity_grades_partition_ddl() would emit the function with the leaf
-- (a new migration: 0001's text is never edited).

CREATE OR REPLACE FUNCTION bench_candidate_insert_fn_ddl(p_table text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT format(
        'CREATE OR REPLACE FUNCTION %I(r activity_grades) RETURNS void LANGUAGE plpgsql '
        'AS $f$ BEGIN INSERT INTO %I SELECT (r).*; END $f$',
        activity_grades_index_name(p_table, 'ins'), p_table)
$$;

CREATE OR REPLACE FUNCTION bench_candidate_route() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_table text;
    v_fn text;
BEGIN
    IF NEW.class_id IS NULL THEN
        NEW.class_id := activity_grades_class_of(NEW.activity_id);
        IF NEW.class_id IS NULL THEN
            RAISE EXCEPTION 'activity_grades: activity % does not exist or has no class',
                quote_literal(NEW.activity_id)
                USING ERRCODE = 'foreign_key_violation';
        END IF;
    END IF;
    IF NEW.term_id IS NULL THEN
        NEW.term_id := activity_grades_term_at(NEW.created_at);
    END IF;
    SELECT p.table_name INTO v_table FROM activity_grades_partition p
     WHERE p.class_id = NEW.class_id AND p.term_id IS NOT DISTINCT FROM NEW.term_id
       AND p.status = 'live';
    IF v_table IS NULL THEN
        v_table := (activity_grades_ensure_partition(NEW.class_id, NEW.term_id)).table_name;
    END IF;
    v_fn := activity_grades_index_name(v_table, 'ins');
    IF to_regproc(quote_ident(v_fn)) IS NULL THEN
        EXECUTE format('INSERT INTO %I SELECT ($1).*', v_table) USING NEW;
    ELSE
        EXECUTE format('SELECT %I($1)', v_fn) USING NEW;
    END IF;
    RETURN NULL;
END $$;
