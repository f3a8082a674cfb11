-- activity_grades_check_placement v1, installed by migration 0011_guard_rails.
-- A class_id or term_id the caller gave must be the one the grade belongs to: the
-- activity's class, the term of created_at as stored (latest start wins where terms
-- overlap; NULL between terms). A NULL given value means "derive it". The same rule and
-- text as activity_grades.core.rules; SQLSTATE 23514 (check_violation).
CREATE OR REPLACE FUNCTION activity_grades_check_placement(
    r activity_grades, p_class_id text, p_term_id text
) RETURNS void LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF r.class_id IS NOT NULL AND r.class_id IS DISTINCT FROM p_class_id THEN
        RAISE EXCEPTION 'activity_grades: activity % belongs to class %, not to class %',
            quote_literal(r.activity_id), quote_literal(p_class_id), quote_literal(r.class_id)
            USING ERRCODE = 'check_violation',
                  HINT = 'leave class_id empty: it is taken from the activity';
    END IF;
    IF r.term_id IS NOT NULL AND r.term_id IS DISTINCT FROM p_term_id THEN
        RAISE EXCEPTION 'activity_grades: created_at falls in %, not in term %',
            coalesce('term ' || quote_literal(p_term_id), 'no term'), quote_literal(r.term_id)
            USING ERRCODE = 'check_violation',
                  HINT = 'leave term_id empty: it is taken from created_at';
    END IF;
END $$;
