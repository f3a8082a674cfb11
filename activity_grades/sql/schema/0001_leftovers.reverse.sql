-- Migration 0001_initial, reverse: what the app made that no other reverse file names
-- (added with the guard rails of issue 12; 0001 runs it first when unapplied, right
-- after RefuseDataLoss found nothing to lose or ACTIVITY_GRADES_ALLOW_DATA_LOSS=1).
-- - the lookups the post_migrate handler generates from settings that have no stub;
-- - the dispatcher, in case 0005's reverse did not run (a partial earlier unapply);
-- - tables that carry the app's marker but are outside the tree: copies of archived
--   leaves kept with --keep-detached, and leaves taken out of the tree by hand.
DROP FUNCTION IF EXISTS activity_grades_terms();
DROP FUNCTION IF EXISTS activity_grades_class_ids();
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'r' AND n.nspname = current_schema()
           AND obj_description(c.oid, 'pg_class')
               IN ('activity_grades:detached', 'activity_grades:partition')
           AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)
    LOOP
        EXECUTE format('DROP TABLE %I.%I', t.nspname, t.relname);
    END LOOP;
END $$;
