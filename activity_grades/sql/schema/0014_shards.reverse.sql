-- Reverse of migration 0014_shards. A class placed on a shard is a fact the coordinator
-- alone records: refuse to forget it (nothing is changed) while any class is placed
-- elsewhere than 'local'. Then drop what setup_shards made on the coordinator (the
-- foreign servers carrying the app's marker, and their user mappings; RESTRICT: a
-- foreign table made by hand on one stops the reverse rather than vanishing with it).
-- The postgres_fdw extension stays: a DBA may have created it, and others may use it.
DO $$
DECLARE
    n bigint;
    srv record;
    um record;
BEGIN
    SELECT count(*) INTO n FROM activity_grades_placement WHERE shard <> 'local';
    IF n > 0 THEN
        RAISE EXCEPTION 'activity_grades: unapplying migration 0014 forgets where % class(es) '
            'placed on shards live (activity_grades_placement). Nothing was changed.', n
            USING HINT = 'place them back with activity_grades.placement.place(class_id, '
                '''local'') while they have no partitions, or DELETE FROM '
                'activity_grades_placement WHERE shard <> ''local'' on purpose';
    END IF;
    FOR srv IN
        SELECT srvname FROM pg_foreign_server
         WHERE obj_description(oid, 'pg_foreign_server') = 'activity_grades:shard'
    LOOP
        FOR um IN SELECT usename FROM pg_user_mappings WHERE srvname = srv.srvname LOOP
            IF um.usename = 'public' THEN
                EXECUTE format('DROP USER MAPPING FOR PUBLIC SERVER %I', srv.srvname);
            ELSE
                EXECUTE format('DROP USER MAPPING FOR %I SERVER %I', um.usename, srv.srvname);
            END IF;
        END LOOP;
        EXECUTE format('DROP SERVER %I', srv.srvname);
    END LOOP;
END $$;
DROP TABLE activity_grades_placement;
