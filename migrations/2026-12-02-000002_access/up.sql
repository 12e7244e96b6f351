-- Who may see and change what: project visibility, groups with roles (and invitations by e-mail,
-- which also work for addresses not registered yet), group-owned projects, and admin-set quotas.

ALTER TABLE projects ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public'
    CHECK (visibility IN ('public', 'campus', 'members', 'private'));

CREATE TABLE groups (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE CHECK (name ~ '^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$' AND position('--' in name) = 0),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE group_members (
    group_id    BIGINT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('owner', 'maintainer', 'viewer')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);

-- An invitation names an address, not an account: it turns into a membership when the address
-- is verified (at sign-up or, for an existing account, at once).
CREATE TABLE group_invitations (
    id          BIGSERIAL PRIMARY KEY,
    group_id    BIGINT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    email       TEXT NOT NULL CHECK (email = lower(email) AND position('@' in email) > 1),
    role        TEXT NOT NULL CHECK (role IN ('owner', 'maintainer', 'viewer')),
    invited_by  BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (group_id, email)
);
CREATE INDEX group_invitations_email ON group_invitations (email);

ALTER TABLE projects ADD COLUMN group_id BIGINT REFERENCES groups (id) ON DELETE RESTRICT;
CREATE INDEX projects_group ON projects (group_id);

-- Limits an admin set for one user or one group; NULL means the installation's default.
CREATE TABLE quotas (
    id                  BIGSERIAL PRIMARY KEY,
    user_id             BIGINT UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    group_id            BIGINT UNIQUE REFERENCES groups (id) ON DELETE CASCADE,
    max_projects        INTEGER CHECK (max_projects >= 0),
    max_instances       INTEGER CHECK (max_instances >= 0),
    max_memory_mb       INTEGER CHECK (max_memory_mb >= 0),
    max_builds_per_hour INTEGER CHECK (max_builds_per_hour >= 0),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((user_id IS NULL) <> (group_id IS NULL))
);
