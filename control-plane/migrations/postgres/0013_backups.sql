-- Backup runs (API §9, backup settings): one row per attempt, written before the job starts
-- and completed when it ends, so failures stay visible. Scheduled attempts carry a unique
-- `slot` ("<slot start>#<attempt>"): two control planes cannot both run the same slot.
-- Manual and CLI runs have no slot (NULLs never collide).
CREATE TABLE backup_runs (
    id           TEXT    PRIMARY KEY,
    kind         TEXT    NOT NULL,
    slot         TEXT    UNIQUE,
    status       TEXT    NOT NULL,
    backend      TEXT    NOT NULL,
    directory    TEXT    NOT NULL,
    file_name    TEXT,
    size_bytes   BIGINT,
    duration_ms  BIGINT,
    pruned       BIGINT  NOT NULL DEFAULT 0,
    error        TEXT,
    started_at   TEXT    NOT NULL,
    finished_at  TEXT,
    started_by   TEXT
);
CREATE INDEX backup_runs_started ON backup_runs (started_at);
CREATE INDEX backup_runs_status ON backup_runs (status, started_at);
