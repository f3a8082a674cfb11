-- Migration 0014_shards (issue 16): where each class lives, decided once.
-- placement.shard_of() records a class's shard the first time it is asked (under an
-- advisory lock, so two processes never disagree) and reads it from here afterwards:
-- adding a shard to ACTIVITY_GRADES['SHARDS'] never moves a class by accident.
-- shard: an alias of ACTIVITY_GRADES['SHARDS'], or 'local' (the coordinator).
-- decided_by: 'setting' (SHARD_PLACEMENT), 'hash' (SHARD_NEW_CLASSES = 'hash'),
-- 'default' (local by default), 'existing' (the class had partitions already),
-- 'place' (placement.place()).
CREATE TABLE activity_grades_placement (
    class_id TEXT NOT NULL,
    shard TEXT NOT NULL,
    decided_by TEXT NOT NULL,
    placed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT activity_grades_placement_pkey PRIMARY KEY (class_id),
    CONSTRAINT activity_grades_placement_shard_check CHECK (shard <> ''),
    CONSTRAINT activity_grades_placement_decided_by_check
        CHECK (decided_by IN ('setting', 'hash', 'default', 'existing', 'place'))
);
CREATE INDEX activity_grades_placement_shard_idx ON activity_grades_placement (shard);
COMMENT ON TABLE activity_grades_placement IS 'activity_grades:placement';
