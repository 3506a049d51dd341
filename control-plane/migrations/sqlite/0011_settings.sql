-- System settings (API §9): one JSON document per section (`general`, `smtp`, `backup`),
-- validated by the control plane before it is written. `version` increases on every write.
CREATE TABLE system_settings (
    name        TEXT    PRIMARY KEY,
    value       TEXT    NOT NULL,
    version     BIGINT  NOT NULL,
    updated_at  TEXT    NOT NULL,
    updated_by  TEXT
);
