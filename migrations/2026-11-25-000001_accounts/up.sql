-- Accounts: users, one-time e-mail tokens (verification and password reset) and personal API tokens.
-- Token columns hold SHA-256 hashes only: a database dump never yields a usable link or token.

CREATE TABLE users (
    id                BIGSERIAL PRIMARY KEY,
    email             TEXT NOT NULL UNIQUE CHECK (email = lower(email) AND position('@' in email) > 1),
    password_hash     TEXT NOT NULL,
    display_name      TEXT NOT NULL CHECK (length(display_name) BETWEEN 1 AND 100),
    student_number    TEXT CHECK (student_number IS NULL OR length(student_number) BETWEEN 1 AND 32),
    language          TEXT NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'ko')),
    role              TEXT NOT NULL DEFAULT 'student' CHECK (role IN ('student', 'professor', 'admin')),
    email_verified_at TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE email_tokens (
    id          BIGSERIAL PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL CHECK (purpose IN ('verify', 'reset')),
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
);
CREATE INDEX email_tokens_user_purpose ON email_tokens (user_id, purpose);

CREATE TABLE api_tokens (
    id           BIGSERIAL PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    token_hash   TEXT NOT NULL UNIQUE,
    token_prefix TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);
