-- Operate it: the audit log, the monitor's samples and the alert incidents.

-- Every security-relevant action, append-only. The application only ever INSERTs and SELECTs;
-- the database refuses the rest too: a trigger raises on UPDATE, DELETE and TRUNCATE, whoever
-- asks (a REVOKE would not stop the table's owner, which is the role the portal connects as).
-- The actor is copied (id and e-mail at the time), not a foreign key: deleting a user must not
-- rewrite their history, and ON DELETE SET NULL would be an UPDATE the trigger refuses.
CREATE TABLE audit_log (
    id           BIGSERIAL PRIMARY KEY,
    at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor_id     BIGINT,
    actor_email  TEXT,
    client_ip    TEXT,
    user_agent   TEXT,
    action       TEXT NOT NULL CHECK (action ~ '^[a-z_]+(\.[a-z_]+)+$'),
    target_kind  TEXT,
    target_id    TEXT,
    details      JSONB NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_at ON audit_log (at DESC);
CREATE INDEX audit_log_action ON audit_log (action, at DESC);
CREATE INDEX audit_log_actor ON audit_log (actor_id, at DESC);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- The monitor's time series. `resolution_secs` is 10 (raw samples, kept 1 h), 60 (1 min
-- rollups, kept 24 h) or 600 (10 min rollups, kept 7 d); the sampler prunes older rows, so the
-- table stays bounded. `series` is `host` or an app's name.
CREATE TABLE metric_samples (
    resolution_secs INTEGER NOT NULL CHECK (resolution_secs > 0),
    series          TEXT NOT NULL,
    metric          TEXT NOT NULL,
    at              TIMESTAMPTZ NOT NULL,
    value           DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (resolution_secs, series, metric, at)
);
CREATE INDEX metric_samples_at ON metric_samples (resolution_secs, at);

-- Alert incidents: one row per incident (a component down, disk or memory over its threshold).
-- An open incident has no cleared_at; the mail for each edge is queued in the same transaction
-- as the row changes, so a restart neither re-sends nor forgets.
CREATE TABLE alert_incidents (
    id          BIGSERIAL PRIMARY KEY,
    key         TEXT NOT NULL,
    opened_at   TIMESTAMPTZ NOT NULL,
    cleared_at  TIMESTAMPTZ,
    reason      TEXT NOT NULL
);
CREATE UNIQUE INDEX alert_incidents_one_open ON alert_incidents (key) WHERE cleared_at IS NULL;
