-- A project's own scaling settings. NULL means "the installation's default" (`[scaling]` in
-- slipway.toml), so changing a default reaches every project that did not choose otherwise.
-- The admin caps (max instances, max idle...) are checked by the portal, which knows them.
ALTER TABLE projects
    ADD COLUMN min_instances      INTEGER CHECK (min_instances >= 0),
    ADD COLUMN max_instances      INTEGER CHECK (max_instances >= 1),
    ADD COLUMN idle_secs          INTEGER CHECK (idle_secs >= 1),
    ADD COLUMN freeze_after_secs  INTEGER CHECK (freeze_after_secs >= 0),
    ADD COLUMN target_concurrency INTEGER CHECK (target_concurrency >= 1),
    ADD CONSTRAINT projects_min_le_max CHECK (min_instances IS NULL OR max_instances IS NULL OR min_instances <= max_instances);
