-- Alerting (API §6.4): the live state of each alert rule (the rule itself is a resource row),
-- the append-only history of its transitions and of every notification delivery, and the
-- rate-limit counter samples the `rate_limit_rejections` metric takes deltas of.
-- Timestamps are RFC 3339 UTC text with microseconds (fixed width, so they sort as text).

-- One row per rule. `revision` grows by one on every ok <-> firing transition: a transition
-- is a compare-and-set on (state, revision), so concurrent evaluators make exactly one.
CREATE TABLE alert_states (
    rule_id       TEXT    PRIMARY KEY,
    tenant_id     TEXT,
    state         TEXT    NOT NULL,
    revision      BIGINT  NOT NULL,
    since         TEXT    NOT NULL,
    last_value    REAL,
    evaluated_at  TEXT    NOT NULL
);

-- One row per transition (`fired` or `resolved`); never updated. The id is the event id sent
-- to receivers; (rule_id, revision) cannot repeat, a second guard against double transitions.
CREATE TABLE alert_events (
    id           TEXT    PRIMARY KEY,
    rule_id      TEXT    NOT NULL,
    tenant_id    TEXT,
    kind         TEXT    NOT NULL,
    value        REAL    NOT NULL,
    threshold    REAL    NOT NULL,
    revision     BIGINT  NOT NULL,
    occurred_at  TEXT    NOT NULL
);
CREATE UNIQUE INDEX alert_events_by_rule ON alert_events (rule_id, revision);

-- Delivery outcomes, appended: `pending` in the transition's own transaction, then the final
-- `delivered` or `failed` (or `pending_smtp` for e-mail until SMTP exists). The latest row of
-- an (event, channel) is its outcome; a lone `pending` means the sender died mid-delivery.
CREATE TABLE alert_deliveries (
    id           TEXT    PRIMARY KEY,
    event_id     TEXT    NOT NULL,
    channel      TEXT    NOT NULL,
    outcome      TEXT    NOT NULL,
    attempts     BIGINT  NOT NULL,
    status_code  BIGINT,
    error        TEXT,
    recorded_at  TEXT    NOT NULL
);
CREATE INDEX alert_deliveries_by_event ON alert_deliveries (event_id, recorded_at);

-- Each live proxy's `rate_limited_total` as the evaluator saw it; pruned after a day (the
-- longest window). Two control planes sampling the same instant keep one row.
CREATE TABLE proxy_counter_samples (
    instance_id         TEXT    NOT NULL,
    sampled_at          TEXT    NOT NULL,
    rate_limited_total  BIGINT  NOT NULL,
    PRIMARY KEY (instance_id, sampled_at)
);
CREATE INDEX proxy_counter_samples_by_time ON proxy_counter_samples (sampled_at);
