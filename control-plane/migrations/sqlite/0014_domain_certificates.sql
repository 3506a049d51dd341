-- Custom domains' TLS certificates (API §8): the chain as uploaded, the private key sealed with
-- a key derived from the server secret (write-only through the API), and the leaf's facts the
-- API shows. One certificate per domain; it leaves with its domain or tenant.
CREATE TABLE domain_certificates (
    domain_id           TEXT    PRIMARY KEY,
    tenant_id           TEXT    NOT NULL,
    chain_pem           TEXT    NOT NULL,
    key_sealed          TEXT    NOT NULL,
    subject             TEXT    NOT NULL,
    issuer              TEXT    NOT NULL,
    -- JSON array of the leaf's DNS names.
    dns_names           TEXT    NOT NULL,
    not_before          TEXT    NOT NULL,
    not_after           TEXT    NOT NULL,
    fingerprint_sha256  TEXT    NOT NULL,
    created_at          TEXT    NOT NULL,
    updated_at          TEXT    NOT NULL
);
CREATE INDEX domain_certificates_by_tenant ON domain_certificates (tenant_id);
