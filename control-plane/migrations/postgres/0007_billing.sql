-- Money (issue 5). Amounts are integers: minor units (fen, cents) for balances, ledger
-- entries and invoices; millionths of a minor unit ("micros") for rates and the exact cost of
-- a usage event (a token costs a small fraction of a fen).

-- Versioned resource rates: a usage event is priced with the rate of its model in force at
-- the event's time (the latest effective_from <= occurred_at).
CREATE TABLE model_rates (
    id                    TEXT    PRIMARY KEY,
    model_id              TEXT    NOT NULL,
    currency              TEXT    NOT NULL,
    input_per_1k_micros   BIGINT  NOT NULL,
    output_per_1k_micros  BIGINT  NOT NULL,
    per_request_micros    BIGINT  NOT NULL,
    effective_from        TEXT    NOT NULL,
    created_at            TEXT    NOT NULL,
    created_by            TEXT,
    UNIQUE (model_id, effective_from)
);

-- The price of each usage event, written in the same transaction as the row: the row is
-- also the usage debit of the balance (idempotent by its request id).
ALTER TABLE usage_events ADD COLUMN rate_id TEXT;
ALTER TABLE usage_events ADD COLUMN currency TEXT;
ALTER TABLE usage_events ADD COLUMN cost_micros BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_events ADD COLUMN debit_minor BIGINT NOT NULL DEFAULT 0;

-- One row per tenant with a balance. balance_minor is a cache, updated in the same
-- transaction as every ledger entry and usage debit; the reconciliation check compares it
-- with SUM(ledger_entries.amount_minor) - SUM(usage_events.debit_minor).
-- carry_micros (0 <= carry < 1,000,000) is the priced usage not yet debited as a whole minor
-- unit, so that many tiny requests are charged exactly, never rounded away.
-- overdraft_minor: how far below zero the balance may go; NULL means no limit (a postpaid
-- tenant, invoiced), 0 a strictly prepaid one. The gateway refuses (402) a tenant whose
-- balance plus overdraft is spent.
CREATE TABLE tenant_balances (
    tenant_id        TEXT    PRIMARY KEY,
    currency         TEXT    NOT NULL,
    balance_minor    BIGINT  NOT NULL,
    carry_micros     BIGINT  NOT NULL,
    overdraft_minor  BIGINT,
    revision         BIGINT  NOT NULL,
    updated_at       TEXT    NOT NULL
);

-- The append-only ledger of everything but usage debits (those are the usage rows):
-- top-ups, redemptions, adjustments, refunds, invoice payments. Signed amounts.
CREATE TABLE ledger_entries (
    id               TEXT    PRIMARY KEY,
    tenant_id        TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    amount_minor     BIGINT  NOT NULL,
    currency         TEXT    NOT NULL,
    idempotency_key  TEXT    NOT NULL,
    reason           TEXT,
    reference        TEXT,
    actor            TEXT,
    created_at       TEXT    NOT NULL,
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX ledger_entries_by_tenant ON ledger_entries (tenant_id, created_at);

CREATE FUNCTION ledger_entries_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'ledger_entries is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();

-- Notifications of money events (low balance, overage), each at most once per dedup_key,
-- e.g. `overage:<tenant>:<rule>:<period>:<threshold>`; delivered later by the notifier.
CREATE TABLE notifications (
    id            TEXT    PRIMARY KEY,
    tenant_id     TEXT,
    kind          TEXT    NOT NULL,
    dedup_key     TEXT    NOT NULL UNIQUE,
    payload       TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    delivered_at  TEXT,
    attempts      BIGINT  NOT NULL,
    last_error    TEXT
);
CREATE INDEX notifications_pending ON notifications (delivered_at, created_at);
