-- activity_grades_partition_ddl v3, installed by migration 0013_readable_timestamps.
-- v3: one more trigger, activity_grades_readable (BEFORE INSERT OR UPDATE): an UPDATE, or an
-- INSERT straight into a partition, that stores a timestamp clients cannot read back
-- (infinity, a BC date, year 10000) is refused like a write through the parent. Its WHEN
-- clause keeps the common row at ten comparisons. Otherwise as v2.
-- The statements that create one partition, in order. Shared by the on-demand path
-- (the routing trigger) and manage.py create_partitions, which also prints them.
CREATE OR REPLACE FUNCTION activity_grades_partition_ddl(
    p_table text, p_parent text, p_class_id text, p_term_id text,
    p_starts_at timestamptz, p_ends_at timestamptz
) RETURNS SETOF text LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_term_id IS NULL THEN
        -- The class CHECK is inherited by the class's term tables; the NO INHERIT
        -- one says rows kept in the class table itself fall outside every term.
        RETURN NEXT format(
            'CREATE TABLE %I (CONSTRAINT activity_grades_class_check CHECK (class_id = %L), '
            'CONSTRAINT activity_grades_no_term_check CHECK (term_id IS NULL) NO INHERIT) '
            'INHERITS (%I)', p_table, p_class_id, p_parent);
    ELSE
        RETURN NEXT format(
            'CREATE TABLE %I (CONSTRAINT activity_grades_term_check CHECK (term_id = %L '
            'AND created_at >= %L::timestamptz AND created_at < %L::timestamptz)) INHERITS (%I)',
            p_table, p_term_id, p_starts_at, p_ends_at, p_parent);
    END IF;
    RETURN NEXT format('ALTER TABLE %I ADD CONSTRAINT %I PRIMARY KEY (id)',
        p_table, activity_grades_index_name(p_table, 'pkey'));
    RETURN NEXT format('CREATE INDEX %I ON %I (activity_id)',
        activity_grades_index_name(p_table, 'activity_idx'), p_table);
    RETURN NEXT format('CREATE INDEX %I ON %I (student_id)',
        activity_grades_index_name(p_table, 'student_idx'), p_table);
    IF activity_grades_unique_key() THEN
        RETURN NEXT format('ALTER TABLE %I ADD CONSTRAINT %I UNIQUE (activity_id, student_id)',
            p_table, activity_grades_index_name(p_table, 'activity_student_key'));
    ELSE
        RETURN NEXT format('CREATE INDEX %I ON %I (activity_id, student_id)',
            activity_grades_index_name(p_table, 'activity_student_idx'), p_table);
    END IF;
    RETURN NEXT format('COMMENT ON TABLE %I IS %L', p_table, 'activity_grades:partition');
    RETURN NEXT format(
        'CREATE TRIGGER activity_grades_keys_insert AFTER INSERT ON %I '
        'REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT '
        'EXECUTE FUNCTION activity_grades_keys_insert()', p_table);
    RETURN NEXT format(
        'CREATE TRIGGER activity_grades_keys_delete AFTER DELETE ON %I '
        'REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT '
        'EXECUTE FUNCTION activity_grades_keys_delete()', p_table);
    RETURN NEXT format(
        'CREATE TRIGGER activity_grades_keys_update AFTER UPDATE ON %I FOR EACH ROW '
        'WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.activity_id IS DISTINCT FROM NEW.activity_id '
        'OR OLD.student_id IS DISTINCT FROM NEW.student_id) '
        'EXECUTE FUNCTION activity_grades_keys_update()', p_table);
    RETURN NEXT format(
        'CREATE TRIGGER activity_grades_move BEFORE UPDATE ON %I FOR EACH ROW '
        'WHEN (OLD.activity_id IS DISTINCT FROM NEW.activity_id '
        'OR OLD.created_at IS DISTINCT FROM NEW.created_at '
        'OR OLD.class_id IS DISTINCT FROM NEW.class_id OR OLD.term_id IS DISTINCT FROM NEW.term_id) '
        'EXECUTE FUNCTION activity_grades_move()', p_table);
    RETURN NEXT format(
        'CREATE TRIGGER activity_grades_readable BEFORE INSERT OR UPDATE ON %I FOR EACH ROW '
        'WHEN (NOT (NEW.created_at >= ''0001-01-01 00:00:00+00'' AND NEW.created_at < ''10000-01-01 00:00:00+00'' '
        'AND NEW.updated_at >= ''0001-01-01 00:00:00+00'' AND NEW.updated_at < ''10000-01-01 00:00:00+00'' '
        'AND NEW.submitted_at >= ''0001-01-01 00:00:00+00'' AND NEW.submitted_at < ''10000-01-01 00:00:00+00'' '
        'AND coalesce(NEW.graded_at >= ''0001-01-01 00:00:00+00'' AND NEW.graded_at < ''10000-01-01 00:00:00+00'', true) '
        'AND coalesce(NEW.commitment_deadline >= ''0001-01-01 00:00:00+00'' AND NEW.commitment_deadline < ''10000-01-01 00:00:00+00'', true))) '
        'EXECUTE FUNCTION activity_grades_readable()', p_table);
    RETURN NEXT format(
        'CREATE TRIGGER activity_grades_no_truncate BEFORE TRUNCATE ON %I '
        'FOR EACH STATEMENT EXECUTE FUNCTION activity_grades_no_truncate()', p_table);
END $$;
