-- Medical record templates (API §4.2): published versions, append-only. A template's
-- editable draft lives in its resource row; publishing freezes it here. Records pin
-- (template_id, version), so a row is never updated or deleted once written, and the
-- primary key makes two concurrent publishes unable to take the same number.
CREATE TABLE template_versions (
    template_id     TEXT    NOT NULL,
    version         BIGINT  NOT NULL,
    content         TEXT    NOT NULL,
    content_sha256  TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    published_at    TEXT    NOT NULL,
    PRIMARY KEY (template_id, version)
);
