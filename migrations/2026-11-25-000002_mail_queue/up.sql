-- The durable outgoing mail queue. Bodies are sealed with the platform key (they carry one-time links)
-- and wiped once delivered; recipient and subject stay for the operator's view of the queue.
CREATE TABLE outbound_mail (
    id              BIGSERIAL PRIMARY KEY,
    to_address      TEXT NOT NULL,
    subject         TEXT NOT NULL,
    sealed_body     BYTEA,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    locked_until    TIMESTAMPTZ,
    sent_at         TIMESTAMPTZ,
    last_error      TEXT
);
CREATE INDEX outbound_mail_due ON outbound_mail (next_attempt_at) WHERE sent_at IS NULL;
