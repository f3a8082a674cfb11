-- Migration 0013_readable_timestamps, reverse: the next 100 tables of the tree that still
-- have the trigger activity_grades_readable, as DROP TRIGGER statements (run in batches
-- like the forward step).
WITH RECURSIVE tree (oid) AS (
    SELECT inhrelid FROM pg_inherits WHERE inhparent = 'activity_grades'::regclass
    UNION ALL
    SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid
)
SELECT format('DROP TRIGGER activity_grades_readable ON %I', c.relname)
  FROM tree t JOIN pg_class c ON c.oid = t.oid
 WHERE EXISTS (SELECT 1 FROM pg_trigger g
                WHERE g.tgrelid = c.oid AND g.tgname = 'activity_grades_readable')
 ORDER BY c.relname LIMIT 100;
