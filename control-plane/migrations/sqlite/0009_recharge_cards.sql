-- Recharge cards (API §5.1-§5.3; billing-medical.md §2.5-§2.6). No code is stored in clear:
-- a card keeps code_hash = HMAC-SHA256(server key, canonical code) and a 4-symbol hint.
-- The cards of a batch are derived from the batch's random seed, which the batch row keeps
-- sealed with the server secret until the last allowed export erases it.

CREATE TABLE card_batches (
    id                TEXT    PRIMARY KEY,
    name              TEXT,
    card_count        BIGINT  NOT NULL CHECK (card_count > 0),
    face_value_minor  BIGINT  NOT NULL CHECK (face_value_minor > 0),
    currency          TEXT    NOT NULL,
    expires_at        TEXT,
    -- Client-chosen (Idempotency-Key); a retry with the same key returns this batch.
    idempotency_key   TEXT    UNIQUE,
    -- hex(seed XOR pad) || hex(tag); NULL once the export limit is reached.
    seed_sealed       TEXT,
    exported_at       TEXT,
    export_count      BIGINT  NOT NULL,
    created_by        TEXT    NOT NULL,
    created_at        TEXT    NOT NULL
);
CREATE INDEX card_batches_by_time ON card_batches (created_at);

-- status is stored as active, disabled or redeemed; "expired" is derived when reading
-- (active with expires_at <= now), so expiry needs no background job.
CREATE TABLE recharge_cards (
    id                  TEXT    PRIMARY KEY,
    batch_id            TEXT    REFERENCES card_batches (id),
    batch_index         BIGINT,
    code_hash           TEXT    NOT NULL UNIQUE,
    code_hint           TEXT    NOT NULL,
    face_value_minor    BIGINT  NOT NULL CHECK (face_value_minor > 0),
    currency            TEXT    NOT NULL,
    status              TEXT    NOT NULL CHECK (status IN ('active', 'disabled', 'redeemed')),
    expires_at          TEXT,
    redeemed_by_tenant  TEXT,
    redeemed_at         TEXT,
    created_at          TEXT    NOT NULL,
    updated_at          TEXT    NOT NULL,
    UNIQUE (batch_id, batch_index)
);
CREATE INDEX recharge_cards_by_time ON recharge_cards (created_at);
CREATE INDEX recharge_cards_by_tenant ON recharge_cards (redeemed_by_tenant, redeemed_at);

-- Failed redemptions (unknown, used, expired or disabled code), one row each, per scope
-- (`tenant:<id>`, `ip:<address>`): the sliding-window brute-force limit counts them here so
-- that it holds across every control-plane instance. Rows older than the window are pruned.
CREATE TABLE recharge_failures (
    id            TEXT  PRIMARY KEY,
    scope_key     TEXT  NOT NULL,
    attempted_at  TEXT  NOT NULL
);
CREATE INDEX recharge_failures_by_scope ON recharge_failures (scope_key, attempted_at);
CREATE INDEX recharge_failures_by_time ON recharge_failures (attempted_at);
