-- Leases of cluster-wide singleton jobs (alert evaluation, retention purges, backups): one
-- control plane holds a job's lease at a time and renews it while it runs; a lease whose
-- holder stopped renewing expires and another control plane takes it over.
CREATE TABLE cluster_leases (
    name        TEXT    PRIMARY KEY,
    holder      TEXT    NOT NULL,
    expires_ms  BIGINT  NOT NULL,
    acquired_at TEXT    NOT NULL
);
