-- Projects (an app's name is its subdomain), their environment, their revisions, and the
-- platform's own secret store (values sealed with the installation key; the cluster shape keeps
-- them in Vault instead and this table stays empty).

CREATE TABLE projects (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE CHECK (name ~ '^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$' AND position('--' in name) = 0),
    owner_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    template     TEXT NOT NULL DEFAULT 'auto',
    live_revision_id BIGINT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX projects_owner ON projects (owner_id);

-- A variable's value lives here when it is plain, or in the secret store when `secret` is true
-- (then `value` is NULL): pages and the API show secrets only as set, never their value.
CREATE TABLE project_env (
    project_id  BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name        TEXT NOT NULL CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_]{0,127}$'),
    value       TEXT,
    secret      BOOLEAN NOT NULL DEFAULT false,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, name),
    CHECK ((secret AND value IS NULL) OR (NOT secret AND value IS NOT NULL))
);

CREATE TABLE sealed_secrets (
    path        TEXT PRIMARY KEY,
    sealed      BYTEA NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE revisions (
    id               BIGSERIAL PRIMARY KEY,
    project_id       BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    number           INTEGER NOT NULL,
    artifact_id      TEXT NOT NULL CHECK (artifact_id ~ '^[0-9a-f]{64}$'),
    template         TEXT NOT NULL,
    plan             JSONB,
    status           TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'building', 'built', 'failed', 'live', 'retired')),
    error            TEXT,
    source           TEXT NOT NULL DEFAULT 'upload' CHECK (source IN ('upload', 'cli', 'api', 'git')),
    commit_sha       TEXT,
    commit_message   TEXT,
    created_by       BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    build_started_at TIMESTAMPTZ,
    build_finished_at TIMESTAMPTZ,
    locked_until     TIMESTAMPTZ,
    UNIQUE (project_id, number)
);
CREATE INDEX revisions_queue ON revisions (created_at) WHERE status = 'queued';

ALTER TABLE projects ADD CONSTRAINT projects_live_revision FOREIGN KEY (live_revision_id) REFERENCES revisions (id) ON DELETE SET NULL;
