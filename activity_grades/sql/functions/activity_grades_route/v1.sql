-- activity_grades_route v1, installed by migration 0001_initial.
-- BEFORE INSERT on the parent: fill class and term, insert into the leaf, keep
-- nothing in the parent. Lookups are static SQL (plans cached per session); the
-- one dynamic statement is the INSERT into a table known only at run time.
CREATE OR REPLACE FUNCTION activity_grades_route() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_table text;
BEGIN
    IF NEW.class_id IS NULL THEN
        NEW.class_id := activity_grades_class_of(NEW.activity_id);
        IF NEW.class_id IS NULL THEN
            RAISE EXCEPTION 'activity_grades: activity % does not exist or has no class',
                quote_literal(NEW.activity_id)
                USING ERRCODE = 'foreign_key_violation',
                      HINT = 'create the activity before grading it';
        END IF;
    END IF;
    IF NEW.term_id IS NULL THEN
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
    EXECUTE format('INSERT INTO %I SELECT ($1).*', v_table) USING NEW;
    RETURN NULL;
END $$;
