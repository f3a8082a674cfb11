-- activity_grades_move v2, installed by migration 0006_activity_errors.
-- v2: as the routing trigger v3, "no such activity" and "activity without a class" are
-- two errors; the class comes from activity_grades_locate. Otherwise as v1.
CREATE OR REPLACE FUNCTION activity_grades_move() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_table text;
BEGIN
    IF NEW.class_id IS NULL OR (NEW.activity_id IS DISTINCT FROM OLD.activity_id
                                AND NEW.class_id IS NOT DISTINCT FROM OLD.class_id) THEN
        SELECT l.class_id INTO NEW.class_id
          FROM activity_grades_locate(NEW.activity_id, NEW.created_at) l;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'activity_grades: activity % does not exist',
                quote_literal(NEW.activity_id) USING ERRCODE = 'foreign_key_violation';
        ELSIF NEW.class_id IS NULL THEN
            RAISE EXCEPTION 'activity_grades: activity % has no class',
                quote_literal(NEW.activity_id) USING ERRCODE = 'not_null_violation';
        END IF;
    END IF;
    IF NEW.term_id IS NULL OR (NEW.created_at IS DISTINCT FROM OLD.created_at
                               AND NEW.term_id IS NOT DISTINCT FROM OLD.term_id) THEN
        NEW.term_id := activity_grades_term_at(NEW.created_at);
    END IF;
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
