-- Custom domains: a project's own domain names, the proof of control the owner must give, and the
-- certificate ACME issued for each (the private key sealed with the installation key).

CREATE TABLE custom_domains (
    id                BIGSERIAL PRIMARY KEY,
    project_id        BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    domain            TEXT NOT NULL UNIQUE CHECK (domain = lower(domain) AND position('.' in domain) > 1),
    -- Served at _slipway-challenge.DOMAIN (TXT) or /.well-known/slipway-challenge/TOKEN; public.
    proof_token       TEXT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'verified', 'active', 'failed')),
    verified_at       TIMESTAMPTZ,
    last_error        TEXT,
    cert_chain_pem    TEXT,
    cert_key_sealed   BYTEA,
    cert_not_before   TIMESTAMPTZ,
    cert_not_after    TIMESTAMPTZ,
    -- Failed orders in a row, and not before this time again.
    n_failures        INTEGER NOT NULL DEFAULT 0 CHECK (n_failures >= 0),
    retry_after       TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((cert_chain_pem IS NULL) = (cert_key_sealed IS NULL))
);
CREATE INDEX custom_domains_project ON custom_domains (project_id);

-- One ACME account per directory URL; its credentials (account key included) sealed.
CREATE TABLE acme_accounts (
    directory_url      TEXT PRIMARY KEY,
    credentials_sealed BYTEA NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
