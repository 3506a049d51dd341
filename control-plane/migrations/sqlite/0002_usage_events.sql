-- Usage events (DESIGN.md §3.2): one row per inference request, unique on the request id, so
-- at-least-once delivery from the data plane is ingested exactly once.
-- Timestamps are RFC 3339 UTC text with microseconds; booleans are 0/1.

CREATE TABLE usage_events (
    request_id       TEXT    PRIMARY KEY,
    tenant_id        TEXT    NOT NULL,
    api_key_id       TEXT,
    key_prefix       TEXT,
    requested_model  TEXT    NOT NULL,
    model_id         TEXT    NOT NULL,
    model_name       TEXT    NOT NULL,
    endpoint         TEXT    NOT NULL,
    input_tokens     BIGINT  NOT NULL,
    output_tokens    BIGINT  NOT NULL,
    status           BIGINT  NOT NULL,
    latency_ms       BIGINT  NOT NULL,
    ttft_ms          BIGINT,
    streamed         BIGINT  NOT NULL,
    usage_reported   BIGINT  NOT NULL,
    occurred_at      TEXT    NOT NULL,
    ingested_at      TEXT    NOT NULL
);
CREATE INDEX usage_events_by_tenant ON usage_events (tenant_id, occurred_at);
CREATE INDEX usage_events_by_time ON usage_events (occurred_at);
