-- activity_grades_key_delete_row v1, installed by migration 0016_shard_partitions.
-- The row-level counterpart of activity_grades_keys_delete for partitions that are
-- postgres_fdw foreign tables (no transition tables there): a row deleted on the shard
-- takes its key row with it, in the same coordinator transaction.
CREATE OR REPLACE FUNCTION activity_grades_key_delete_row() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM activity_grades_key WHERE id = OLD.id;
    RETURN NULL;
END $$;
