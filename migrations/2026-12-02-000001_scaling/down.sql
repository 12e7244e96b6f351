ALTER TABLE projects
    DROP CONSTRAINT projects_min_le_max,
    DROP COLUMN target_concurrency,
    DROP COLUMN freeze_after_secs,
    DROP COLUMN idle_secs,
    DROP COLUMN max_instances,
    DROP COLUMN min_instances;
