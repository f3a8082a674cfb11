-- activity_grades_unique_key v1, installed by migration 0007_unique_key.
-- Whether (activity_id, student_id) is unique across the tree in this database: the
-- key table's unique constraint exists. New partitions follow it
-- (activity_grades_partition_ddl v2), so the database keeps its mode in one place,
-- whatever process creates a partition; manage.py apply_unique_key switches the key
-- table, the parent and every partition to what ACTIVITY_GRADES['UNIQUE_KEY'] says.
CREATE OR REPLACE FUNCTION activity_grades_unique_key() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM pg_constraint
         WHERE conrelid = to_regclass('activity_grades_key')
           AND conname = 'activity_grades_unique_student_activity' AND contype = 'u')
$$;
