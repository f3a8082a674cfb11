-- Migration 0013_readable_timestamps: partitions made before it get the trigger
-- activity_grades_readable, a batch of 100 per transaction (each CREATE TRIGGER locks its
-- table until commit: thousands in one transaction would fill the server's lock table).
-- This query returns the next batch's statements, from activity_grades_partition_ddl v3,
-- for the tables of the tree that lack the trigger; the migration runs them, then asks
-- again until nothing is left.
WITH RECURSIVE tree (oid) AS (
    SELECT inhrelid FROM pg_inherits WHERE inhparent = 'activity_grades'::regclass
    UNION ALL
    SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid
), pending AS (
    SELECT c.relname FROM tree t JOIN pg_class c ON c.oid = t.oid
     WHERE NOT EXISTS (SELECT 1 FROM pg_trigger g
                        WHERE g.tgrelid = c.oid AND g.tgname = 'activity_grades_readable')
     ORDER BY c.relname LIMIT 100
)
SELECT s FROM pending p
 CROSS JOIN LATERAL activity_grades_partition_ddl(p.relname, 'activity_grades', 'x', NULL,
                                                  NULL, NULL) s
 WHERE s LIKE 'CREATE TRIGGER activity_grades_readable %';
