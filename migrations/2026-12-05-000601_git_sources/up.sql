-- A project may follow a Git repository's branch: pushes (webhooks), a manual redeploy and a
-- polling fallback build it like an upload. The deploy token and the webhook secret live in the
-- secret store (projects/<id>/git/token, projects/<id>/git/webhook_secret), never here.
CREATE TABLE git_sources (
    project_id      BIGINT PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    repo_url        TEXT NOT NULL CHECK (length(repo_url) <= 2000),
    branch          TEXT NOT NULL CHECK (length(branch) BETWEEN 1 AND 255),
    has_token       BOOLEAN NOT NULL DEFAULT false,
    -- The commit last built from this source (any trigger); polling compares against it.
    last_sha        TEXT,
    last_checked_at TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Webhook delivery ids already received, per project: a replayed delivery is refused.
CREATE TABLE webhook_deliveries (
    project_id  BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    delivery_id TEXT NOT NULL CHECK (length(delivery_id) <= 200),
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, delivery_id)
);
