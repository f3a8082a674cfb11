-- activity_grades_move v1, installed by migration 0001_initial.
-- BEFORE UPDATE on a partition, only when a routing column changed: keep the row
-- where it is if it still belongs there, otherwise move it (delete + insert in
-- the same statement, so it is never lost nor doubled) and skip the update here.
-- As on insert, an empty class_id or term_id means "derive it": Django's save()
-- writes back the NULLs it holds in memory for columns the trigger filled.
CREATE OR REPLACE FUNCTION activity_grades_move() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_table text;
BEGIN
    IF NEW.class_id IS NULL OR (NEW.activity_id IS DISTINCT FROM OLD.activity_id
                                AND NEW.class_id IS NOT DISTINCT FROM OLD.class_id) THEN
        NEW.class_id := activity_grades_class_of(NEW.activity_id);
        IF NEW.class_id IS NULL THEN
            RAISE EXCEPTION 'activity_grades: activity % does not exist or has no class',
                quote_literal(NEW.activity_id) USING ERRCODE = 'foreign_key_violation';
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
