-- activity_grades_key_insert_row v1, installed by migration 0016_shard_partitions.
-- The key index for a partition that is a postgres_fdw foreign table (issue 16): statement
-- triggers with transition tables are not allowed on foreign tables, so each row written
-- into one adds its key row here, on the coordinator, in the same transaction as the remote
-- INSERT. A duplicate id or (activity, student) fails this INSERT, which rolls the whole
-- statement back, the shard's row included (the remote transaction ends with the
-- coordinator's). Same effect per row as activity_grades_keys_insert per statement.
CREATE OR REPLACE FUNCTION activity_grades_key_insert_row() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO activity_grades_key (id, activity_id, student_id, class_id, term_id)
    VALUES (NEW.id, NEW.activity_id, NEW.student_id, NEW.class_id, NEW.term_id);
    RETURN NULL;
END $$;
