-- Migration 0003_archive, reverse (added with the guard rails of issue 12; runs right after
-- RefuseDataLoss, so only with ACTIVITY_GRADES_ALLOW_DATA_LOSS=1 when the archive held
-- grades): the archive is about to be dropped, so no registry row may keep saying that a
-- (class, term) is archived, with nothing to restore once migrated forward again.
DELETE FROM activity_grades_partition WHERE status = 'archived';
