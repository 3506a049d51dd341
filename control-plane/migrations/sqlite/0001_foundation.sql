-- Foundation: generic resources, config version, hash-chained audit log.
-- Timestamps are RFC 3339 UTC text with microseconds (fixed width, so they sort as text).

CREATE TABLE resources (
    kind        TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    tenant_id   TEXT,
    unique_key  TEXT,
    status      TEXT,
    name        TEXT,
    ref_id      TEXT,
    body        TEXT    NOT NULL,
    revision    BIGINT  NOT NULL,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE UNIQUE INDEX resources_unique_key ON resources (kind, unique_key);
CREATE INDEX resources_by_tenant ON resources (kind, tenant_id, created_at);
CREATE INDEX resources_by_ref ON resources (kind, ref_id);

CREATE TABLE config_version (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  BIGINT  NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 1);

CREATE TABLE audit_log (
    seq            BIGINT  PRIMARY KEY,
    id             TEXT    NOT NULL UNIQUE,
    recorded_at    TEXT    NOT NULL,
    actor          TEXT    NOT NULL,
    role           TEXT,
    tenant_id      TEXT,
    action         TEXT    NOT NULL,
    resource_type  TEXT,
    resource_id    TEXT,
    outcome        TEXT    NOT NULL,
    status_code    BIGINT  NOT NULL,
    request_id     TEXT,
    source_ip      TEXT,
    details        TEXT,
    prev_hash      TEXT    NOT NULL,
    hash           TEXT    NOT NULL
);
CREATE INDEX audit_log_by_tenant ON audit_log (tenant_id, seq);
CREATE INDEX audit_log_by_time ON audit_log (recorded_at);

-- The head of the chain: taking its row lock serializes appends.
CREATE TABLE audit_head (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    seq   BIGINT  NOT NULL,
    hash  TEXT    NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Append-only: the application never updates or deletes audit entries.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
