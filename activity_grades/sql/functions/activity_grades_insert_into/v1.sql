-- activity_grades_insert_into v1, installed by migration 0005_fast_route.
-- STUB. After every migrate the app's post_migrate handler replaces it with the
-- dispatcher generated from the partition registry (FAST_ROUTE_PARTITIONS recent
-- leaves); this one knows no table, so the routing trigger takes its dynamic INSERT.
CREATE OR REPLACE FUNCTION activity_grades_insert_into(p_table text, r activity_grades)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RETURN false;
END $$;
