"""Parent table, uniqueness index, partition registry, routing and partition DDL.

Fixed SQL text (never built from live code): an edited function gets a new migration.
Everything is created in the schema first on ``search_path`` (Django's default).
"""

from django.db import migrations

TABLES = r"""
CREATE TABLE activity_grades (
    id TEXT NOT NULL DEFAULT gen_random_uuid()::text,
    activity_id TEXT NOT NULL,
    student_id TEXT NOT NULL,
    score DOUBLE PRECISION,
    points INTEGER,
    feedback TEXT,
    status TEXT NOT NULL,
    submitted_at TIMESTAMPTZ(3) NOT NULL,
    graded_at TIMESTAMPTZ(3),
    graded_by_id TEXT,
    content JSONB,
    attachments JSONB,
    created_at TIMESTAMPTZ(3) NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ(3) NOT NULL DEFAULT now(),
    is_archived BOOLEAN NOT NULL DEFAULT false,
    is_committed BOOLEAN NOT NULL DEFAULT false,
    commitment_id TEXT,
    commitment_deadline TIMESTAMPTZ(3),
    commitment_met BOOLEAN,
    class_id TEXT,
    term_id TEXT,
    -- Only partitions hold rows: a row reaching the parent itself is an error, never
    -- a silent resting place (and the planner skips the parent when it reads).
    CONSTRAINT activity_grades_parent_holds_no_rows CHECK (false) NO INHERIT,
    CONSTRAINT activity_grades_pkey PRIMARY KEY (id)
);
CREATE INDEX activity_grades_activity_idx ON activity_grades (activity_id);
CREATE INDEX activity_grades_student_idx ON activity_grades (student_id);
ALTER TABLE activity_grades
    ADD CONSTRAINT activity_grades_activity_student_key UNIQUE (activity_id, student_id);
COMMENT ON TABLE activity_grades IS 'activity_grades:parent';

-- Inheritance gives every child its own indexes: this table is the one index that
-- spans the tree, so id and (activity, student) stay unique across all partitions.
-- It also tells which partition holds a grade (class_id, term_id) without
-- planning a query against every child.
CREATE TABLE activity_grades_key (
    id TEXT NOT NULL,
    activity_id TEXT NOT NULL,
    student_id TEXT NOT NULL,
    class_id TEXT NOT NULL,
    term_id TEXT,
    CONSTRAINT activity_grades_unique_id PRIMARY KEY (id),
    CONSTRAINT activity_grades_unique_student_activity UNIQUE (student_id, activity_id)
);
COMMENT ON TABLE activity_grades_key IS 'activity_grades:key-index';

-- (class, term) -> table. term_id NULL is the class table itself.
CREATE TABLE activity_grades_partition (
    id BIGSERIAL PRIMARY KEY,
    class_id TEXT NOT NULL,
    term_id TEXT,
    table_name TEXT NOT NULL UNIQUE,
    parent_table TEXT NOT NULL,
    starts_at TIMESTAMPTZ,
    ends_at TIMESTAMPTZ,
    academic_year TEXT,
    status TEXT NOT NULL DEFAULT 'live'
        CHECK (status IN ('live', 'detached', 'archived')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((term_id IS NULL) = (starts_at IS NULL AND ends_at IS NULL))
);
CREATE UNIQUE INDEX activity_grades_partition_class_uniq
    ON activity_grades_partition (class_id) WHERE term_id IS NULL;
CREATE UNIQUE INDEX activity_grades_partition_class_term_uniq
    ON activity_grades_partition (class_id, term_id) WHERE term_id IS NOT NULL;
COMMENT ON TABLE activity_grades_partition IS 'activity_grades:registry';
"""

DROP_TABLES = r"""
DROP TABLE IF EXISTS activity_grades_partition;
DROP TABLE IF EXISTS activity_grades_key;
DROP TABLE IF EXISTS activity_grades CASCADE;
"""

# Installed for real from settings by activity_grades.lookups after every migrate;
# these stubs only make a half-installed database fail loudly.
LOOKUP_STUBS = r"""
CREATE FUNCTION activity_grades_class_of(p_activity_id text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RAISE EXCEPTION 'activity_grades lookups are not installed: run manage.py migrate';
END $$;

CREATE FUNCTION activity_grades_term_at(p_at timestamptz) RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RAISE EXCEPTION 'activity_grades lookups are not installed: run manage.py migrate';
END $$;

CREATE FUNCTION activity_grades_term_bounds(
    p_term_id text, OUT starts_at timestamptz, OUT ends_at timestamptz, OUT academic_year text
) LANGUAGE plpgsql STABLE AS $$
BEGIN
    RAISE EXCEPTION 'activity_grades lookups are not installed: run manage.py migrate';
END $$;
"""

DROP_LOOKUPS = r"""
DROP FUNCTION IF EXISTS activity_grades_class_of(text);
DROP FUNCTION IF EXISTS activity_grades_term_at(timestamptz);
DROP FUNCTION IF EXISTS activity_grades_term_bounds(text);
"""

NAMING = r"""
-- Lower-case ASCII letters, digits and single underscores.
CREATE FUNCTION activity_grades_slug(p text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT trim(both '_' from lower(regexp_replace(p, '[^A-Za-z0-9]+', '_', 'g')))
$$;

-- A readable name when both ids are simple and the name is free; otherwise a
-- truncated slug plus a hash of the exact ids. Names are ASCII, so 63 characters
-- are 63 bytes. The registry, not this function, is the source of truth.
CREATE FUNCTION activity_grades_partition_name(p_class_id text, p_term_id text)
RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
    c text := activity_grades_slug(p_class_id);
    t text := activity_grades_slug(p_term_id);
    readable text;
    hashed text;
    h text := substr(md5(length(p_class_id) || ':' || p_class_id || '|'
                         || coalesce(length(p_term_id) || ':' || p_term_id, '-')), 1, 10);
BEGIN
    readable := 'activity_grades_class_' || c || coalesce('_term_' || t, '');
    IF c = p_class_id AND c <> ''
       AND (p_term_id IS NULL OR (t = p_term_id AND t <> ''))
       AND length(readable) <= 63
       AND NOT EXISTS (SELECT 1 FROM activity_grades_partition WHERE table_name = readable)
       AND to_regclass(quote_ident(readable)) IS NULL
    THEN
        RETURN readable;
    END IF;
    IF p_term_id IS NULL THEN
        hashed := 'activity_grades_class_' || left(c, 30) || '_' || h;
    ELSE
        hashed := 'activity_grades_class_' || left(c, 12) || '_term_' || left(t, 12) || '_' || h;
    END IF;
    IF EXISTS (SELECT 1 FROM activity_grades_partition WHERE table_name = hashed)
       OR to_regclass(quote_ident(hashed)) IS NOT NULL THEN
        RAISE EXCEPTION 'activity_grades: partition name % for class % term % is taken',
            hashed, quote_literal(p_class_id), coalesce(quote_literal(p_term_id), 'NULL');
    END IF;
    RETURN hashed;
END $$;

-- Index names derived from a table name, kept within 63 bytes and unique.
CREATE FUNCTION activity_grades_index_name(p_table text, p_suffix text)
RETURNS text LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE
        WHEN length(p_table) + 1 + length(p_suffix) <= 63 THEN p_table || '_' || p_suffix
        ELSE left(p_table, 63 - length(p_suffix) - 10) || '_' || substr(md5(p_table), 1, 8)
             || '_' || p_suffix
    END
$$;
"""

DROP_NAMING = r"""
DROP FUNCTION IF EXISTS activity_grades_index_name(text, text);
DROP FUNCTION IF EXISTS activity_grades_partition_name(text, text);
DROP FUNCTION IF EXISTS activity_grades_slug(text);
"""

PARTITION_DDL = r"""
-- The statements that create one partition, in order. Shared by the on-demand path
-- (the routing trigger) and manage.py create_partitions, which also prints them.
CREATE FUNCTION activity_grades_partition_ddl(
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
    RETURN NEXT format('ALTER TABLE %I ADD CONSTRAINT %I UNIQUE (activity_id, student_id)',
        p_table, activity_grades_index_name(p_table, 'activity_student_key'));
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
        'CREATE TRIGGER activity_grades_no_truncate BEFORE TRUNCATE ON %I '
        'FOR EACH STATEMENT EXECUTE FUNCTION activity_grades_no_truncate()', p_table);
END $$;

-- Find or create the partition for (class, term); term NULL means the class table.
-- Safe when sessions race: one creates, the others wait on the advisory lock and
-- then find it. The lock is held to the end of the creating transaction.
CREATE FUNCTION activity_grades_ensure_partition(
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
"""

DROP_PARTITION_DDL = r"""
DROP FUNCTION IF EXISTS activity_grades_ensure_partition(text, text);
DROP FUNCTION IF EXISTS activity_grades_partition_ddl(text, text, text, text, timestamptz, timestamptz);
"""

TRIGGERS = r"""
-- BEFORE INSERT on the parent: fill class and term, insert into the leaf, keep
-- nothing in the parent. Lookups are static SQL (plans cached per session); the
-- one dynamic statement is the INSERT into a table known only at run time.
CREATE FUNCTION activity_grades_route() RETURNS trigger
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

CREATE TRIGGER activity_grades_route BEFORE INSERT ON activity_grades
    FOR EACH ROW EXECUTE FUNCTION activity_grades_route();

-- BEFORE UPDATE on a partition, only when a routing column changed: keep the row
-- where it is if it still belongs there, otherwise move it (delete + insert in
-- the same statement, so it is never lost nor doubled) and skip the update here.
-- As on insert, an empty class_id or term_id means "derive it": Django's save()
-- writes back the NULLs it holds in memory for columns the trigger filled.
CREATE FUNCTION activity_grades_move() RETURNS trigger
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

CREATE FUNCTION activity_grades_keys_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO activity_grades_key (id, activity_id, student_id, class_id, term_id)
    SELECT id, activity_id, student_id, class_id, term_id FROM new_rows;
    RETURN NULL;
END $$;

CREATE FUNCTION activity_grades_keys_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM activity_grades_key k USING old_rows o WHERE k.id = o.id;
    RETURN NULL;
END $$;

CREATE FUNCTION activity_grades_keys_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE activity_grades_key
       SET id = NEW.id, activity_id = NEW.activity_id, student_id = NEW.student_id
     WHERE id = OLD.id;
    RETURN NULL;
END $$;

CREATE FUNCTION activity_grades_no_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'activity_grades: TRUNCATE of % would leave the key index stale',
        TG_TABLE_NAME
        USING HINT = 'delete rows, or archive the term with manage.py archive_grades';
END $$;

-- Statement triggers fire only on the table a statement names, and their transition
-- tables hold the rows of every child it reached: a DELETE through the parent (what
-- Django issues) is seen here, one through a partition by that partition's trigger.
CREATE TRIGGER activity_grades_keys_delete AFTER DELETE ON activity_grades
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION activity_grades_keys_delete();
CREATE TRIGGER activity_grades_no_truncate BEFORE TRUNCATE ON activity_grades
    FOR EACH STATEMENT EXECUTE FUNCTION activity_grades_no_truncate();
"""

DROP_TRIGGERS = r"""
DROP TRIGGER IF EXISTS activity_grades_route ON activity_grades;
DROP TRIGGER IF EXISTS activity_grades_keys_delete ON activity_grades;
DROP TRIGGER IF EXISTS activity_grades_no_truncate ON activity_grades;
DROP FUNCTION IF EXISTS activity_grades_route();
DROP FUNCTION IF EXISTS activity_grades_move() CASCADE;
DROP FUNCTION IF EXISTS activity_grades_keys_insert() CASCADE;
DROP FUNCTION IF EXISTS activity_grades_keys_delete() CASCADE;
DROP FUNCTION IF EXISTS activity_grades_keys_update() CASCADE;
DROP FUNCTION IF EXISTS activity_grades_no_truncate() CASCADE;
"""


class Migration(migrations.Migration):
    initial = True
    dependencies: list = []

    operations = [
        migrations.RunSQL(TABLES, DROP_TABLES),
        migrations.RunSQL(LOOKUP_STUBS, DROP_LOOKUPS),
        migrations.RunSQL(NAMING, DROP_NAMING),
        migrations.RunSQL(TRIGGERS, DROP_TRIGGERS),
        migrations.RunSQL(PARTITION_DDL, DROP_PARTITION_DDL),
    ]
