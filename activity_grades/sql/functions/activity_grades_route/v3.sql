-- activity_grades_route v3, installed by migration 0006_activity_errors.
-- v3: a grade whose activity does not exist and one whose activity has no class are two
-- different errors (v2 said "does not exist or has no class" for both). The class is
-- always looked up with activity_grades_locate, whose empty result means "no such
-- activity"; otherwise as v2.
CREATE OR REPLACE FUNCTION activity_grades_route() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_table text;
BEGIN
    IF NEW.class_id IS NULL THEN
        SELECT l.class_id, coalesce(NEW.term_id, l.term_id) INTO NEW.class_id, NEW.term_id
          FROM activity_grades_locate(NEW.activity_id, NEW.created_at) l;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'activity_grades: activity % does not exist',
                quote_literal(NEW.activity_id)
                USING ERRCODE = 'foreign_key_violation',
                      HINT = 'create the activity before grading it';
        ELSIF NEW.class_id IS NULL THEN
            RAISE EXCEPTION 'activity_grades: activity % has no class',
                quote_literal(NEW.activity_id)
                USING ERRCODE = 'not_null_violation',
                      HINT = 'give the activity a class before grading it: grades are '
                             'partitioned by class';
        END IF;
    ELSIF NEW.term_id IS NULL THEN
        NEW.term_id := activity_grades_term_at(NEW.created_at);
    END IF;
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
