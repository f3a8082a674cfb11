-- Reverse of migration 0016_shard_partitions. RESTRICT: while a foreign partition's
-- triggers call these functions the reverse stops here, naming them, rather than leaving
-- foreign partitions whose writes no longer reach the key index.
DROP FUNCTION activity_grades_key_delete_row();
DROP FUNCTION activity_grades_key_insert_row();
