-- Gateway operations (API §7.3 access logs, §7.4 status): proxy instances as their
-- heartbeats report them, and the access log the proxies ship in batches.
-- Timestamps are RFC 3339 UTC text with microseconds (fixed width, so they sort as text).

-- The latest heartbeat of each proxy instance (upserted by instance_id). Instances silent for
-- a day are pruned when another heartbeat arrives.
CREATE TABLE proxy_instances (
    instance_id        TEXT    PRIMARY KEY,
    address            TEXT    NOT NULL,
    snapshot_version   BIGINT,
    started_at         TEXT    NOT NULL,
    requests_total     BIGINT  NOT NULL,
    requests_per_sec   REAL  NOT NULL,
    last_heartbeat_at  TEXT    NOT NULL
);
CREATE INDEX proxy_instances_by_heartbeat ON proxy_instances (last_heartbeat_at);

-- One row per logged request, unique on the request id, so at-least-once delivery from the
-- data plane is ingested exactly once. Never bodies, keys or query strings.
CREATE TABLE access_logs (
    request_id   TEXT    PRIMARY KEY,
    occurred_at  TEXT    NOT NULL,
    method       TEXT    NOT NULL,
    host         TEXT    NOT NULL,
    path         TEXT    NOT NULL,
    status       BIGINT  NOT NULL,
    latency_ms   BIGINT  NOT NULL,
    tenant_id    TEXT,
    route        TEXT    NOT NULL,
    upstream     TEXT,
    bytes_sent   BIGINT  NOT NULL,
    instance_id  TEXT    NOT NULL,
    ingested_at  TEXT    NOT NULL
);
CREATE INDEX access_logs_by_tenant ON access_logs (tenant_id, occurred_at);
CREATE INDEX access_logs_by_time ON access_logs (occurred_at);
