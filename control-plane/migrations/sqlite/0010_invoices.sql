-- Invoices and overage (API §2.3, §2.4; billing-medical.md §1, §6.1 I1-I6, O1).
-- Amounts are integers in minor units of the invoice currency; timestamps are RFC 3339 UTC
-- text with microseconds (fixed width, so they sort as text).

-- One invoice per (tenant, period). `number` is NULL until the invoice is issued, then the
-- tenant's next gapless number from invoice_counters. Once the status leaves `draft` the
-- content (tenant, period, currency, amounts, number, hash, lines) is frozen: the triggers
-- below refuse any change to it, whatever the application does.
CREATE TABLE invoices (
    id              TEXT    PRIMARY KEY,
    tenant_id       TEXT    NOT NULL,
    period          TEXT,
    period_start    TEXT    NOT NULL,
    period_end      TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    number          BIGINT,
    currency        TEXT    NOT NULL,
    subtotal_minor  BIGINT  NOT NULL,
    credits_minor   BIGINT  NOT NULL,
    tax_rate_bps    BIGINT  NOT NULL,
    tax_minor       BIGINT  NOT NULL,
    total_minor     BIGINT  NOT NULL,
    content_hash    TEXT,
    issued_at       TEXT,
    paid_at         TEXT,
    voided_at       TEXT,
    uncollectible_at TEXT,
    notes           TEXT,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    UNIQUE (tenant_id, period_start, period_end),
    UNIQUE (tenant_id, number)
);
CREATE INDEX invoices_by_tenant ON invoices (tenant_id, period_start);
CREATE INDEX invoices_by_status ON invoices (status, period_start);

-- The lines of an invoice, in order. kind: model_usage | late_usage | plan_fee | overage |
-- credit (the credit line is negative and mirrors invoices.credits_minor).
CREATE TABLE invoice_lines (
    invoice_id       TEXT    NOT NULL,
    position         BIGINT  NOT NULL,
    kind             TEXT    NOT NULL,
    description      TEXT    NOT NULL,
    model_id         TEXT,
    quantity_tokens  BIGINT  NOT NULL,
    requests         BIGINT  NOT NULL,
    cost_micros      BIGINT  NOT NULL,
    amount_minor     BIGINT  NOT NULL,
    PRIMARY KEY (invoice_id, position)
);

-- Gapless numbering: the row of a tenant is incremented in the issuing transaction (and is
-- the per-tenant lock of invoice generation and issuing).
CREATE TABLE invoice_counters (
    tenant_id    TEXT    PRIMARY KEY,
    last_number  BIGINT  NOT NULL
);

-- Which issued invoice billed a usage row (NULL: not billed yet). Set once, when the
-- invoice is issued; usage arriving later for an issued period stays NULL and is billed as
-- late usage by the tenant's next issued invoice.
ALTER TABLE usage_events ADD COLUMN invoice_id TEXT;
CREATE INDEX usage_events_unbilled ON usage_events (tenant_id, invoice_id, occurred_at);

CREATE TRIGGER invoices_frozen BEFORE UPDATE ON invoices
WHEN OLD.status <> 'draft' AND (
    NEW.tenant_id IS NOT OLD.tenant_id OR NEW.period_start IS NOT OLD.period_start
    OR NEW.period_end IS NOT OLD.period_end OR NEW.number IS NOT OLD.number
    OR NEW.currency IS NOT OLD.currency OR NEW.subtotal_minor IS NOT OLD.subtotal_minor
    OR NEW.credits_minor IS NOT OLD.credits_minor OR NEW.tax_minor IS NOT OLD.tax_minor
    OR NEW.tax_rate_bps IS NOT OLD.tax_rate_bps OR NEW.total_minor IS NOT OLD.total_minor
    OR NEW.content_hash IS NOT OLD.content_hash OR NEW.issued_at IS NOT OLD.issued_at
    OR NEW.status = 'draft')
BEGIN SELECT RAISE(ABORT, 'an issued invoice is immutable'); END;
CREATE TRIGGER invoices_no_delete BEFORE DELETE ON invoices
WHEN OLD.status <> 'draft'
BEGIN SELECT RAISE(ABORT, 'only a draft invoice can be deleted'); END;
CREATE TRIGGER invoice_lines_no_update BEFORE UPDATE ON invoice_lines
WHEN EXISTS (SELECT 1 FROM invoices WHERE id = OLD.invoice_id AND status <> 'draft')
BEGIN SELECT RAISE(ABORT, 'an issued invoice is immutable'); END;
CREATE TRIGGER invoice_lines_no_delete BEFORE DELETE ON invoice_lines
WHEN EXISTS (SELECT 1 FROM invoices WHERE id = OLD.invoice_id AND status <> 'draft')
BEGIN SELECT RAISE(ABORT, 'an issued invoice is immutable'); END;
CREATE TRIGGER invoice_lines_no_insert BEFORE INSERT ON invoice_lines
WHEN EXISTS (SELECT 1 FROM invoices WHERE id = NEW.invoice_id AND status <> 'draft')
BEGIN SELECT RAISE(ABORT, 'an issued invoice is immutable'); END;

-- Overage rules: per tenant, or the platform default (tenant_id NULL, scope '*'), one per
-- (scope, metric). metric: tokens | spend; mode: soft (notify) | hard (notify and cap).
-- thresholds: JSON array of whole percentages of the allowance, ascending.
CREATE TABLE overage_rules (
    id                     TEXT    PRIMARY KEY,
    tenant_id              TEXT,
    scope                  TEXT    NOT NULL,
    metric                 TEXT    NOT NULL,
    mode                   TEXT    NOT NULL,
    included_tokens        BIGINT,
    included_spend_minor   BIGINT,
    overage_per_1k_micros  BIGINT  NOT NULL,
    thresholds             TEXT    NOT NULL,
    enabled                BIGINT  NOT NULL,
    created_at             TEXT    NOT NULL,
    updated_at             TEXT    NOT NULL,
    UNIQUE (scope, metric)
);

-- One row per threshold crossed, per (tenant, rule, period); written with its notification
-- in one transaction, so each exists once however many evaluations race.
CREATE TABLE overage_records (
    id            TEXT    PRIMARY KEY,
    tenant_id     TEXT    NOT NULL,
    rule_id       TEXT    NOT NULL,
    period        TEXT    NOT NULL,
    period_start  TEXT    NOT NULL,
    period_end    TEXT    NOT NULL,
    threshold     BIGINT  NOT NULL,
    metric        TEXT    NOT NULL,
    mode          TEXT    NOT NULL,
    usage_value   BIGINT  NOT NULL,
    allowance     BIGINT  NOT NULL,
    crossed_at    TEXT    NOT NULL,
    UNIQUE (tenant_id, rule_id, period, threshold)
);
CREATE INDEX overage_records_by_time ON overage_records (crossed_at);
