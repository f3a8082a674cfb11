-- activity_grades_granularity v1, installed by migration 0015_monthly_partitions.
-- STUB. After every migrate the app's post_migrate handler (and create_partitions)
-- replaces it with the version generated from ACTIVITY_GRADES['PARTITION_GRANULARITY'];
-- this one answers the default, so a half-installed database keeps today's tree.
CREATE OR REPLACE FUNCTION activity_grades_granularity() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT 'term'::text
$$;
