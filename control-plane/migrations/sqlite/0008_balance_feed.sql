-- Balances for the data plane and low-balance alerts (issue 5).

-- The balance feed (GET /api/internal/balances): one global sequence, bumped by a trigger in
-- the same transaction as every change of a gated tenant's funds (balance, overdraft limit or
-- currency of a tenant with a limit, or the removal of its limit). The changed row records
-- the sequence value in feed_seq. Writers of the sequence serialize on its row, so sequence
-- order is commit order and a reader that saw value N has seen every change up to N: a
-- cursor never skips a change, whoever made it (ledger entries, usage debits, overdrafts).
CREATE TABLE balance_feed (
    id   BIGINT PRIMARY KEY,
    seq  BIGINT NOT NULL
);
INSERT INTO balance_feed (id, seq) VALUES (1, 0);

ALTER TABLE tenant_balances ADD COLUMN feed_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX tenant_balances_by_feed ON tenant_balances (feed_seq);

-- Only UPDATE OF these columns fires it, so the trigger's own UPDATE (of feed_seq) does not.
CREATE TRIGGER tenant_balances_feed AFTER UPDATE OF balance_minor, overdraft_minor, currency
ON tenant_balances
WHEN (NEW.overdraft_minor IS NOT NULL OR OLD.overdraft_minor IS NOT NULL)
 AND (NEW.balance_minor IS NOT OLD.balance_minor
      OR NEW.overdraft_minor IS NOT OLD.overdraft_minor
      OR NEW.currency IS NOT OLD.currency)
BEGIN
    UPDATE balance_feed SET seq = seq + 1 WHERE id = 1;
    UPDATE tenant_balances SET feed_seq = (SELECT seq FROM balance_feed WHERE id = 1)
     WHERE tenant_id = NEW.tenant_id;
END;

-- Low-balance threshold per tenant (minor units of the balance's currency). `armed` (0/1):
-- a notification is due at the next downward crossing; it is disarmed when one is sent and
-- re-armed only once the balance is back at or above the threshold. `epoch` counts armings
-- and makes the notification's dedup key, so one crossing is one notification.
CREATE TABLE balance_thresholds (
    tenant_id        TEXT    PRIMARY KEY,
    threshold_minor  BIGINT  NOT NULL,
    armed            BIGINT  NOT NULL,
    epoch            BIGINT  NOT NULL,
    updated_at       TEXT    NOT NULL,
    updated_by       TEXT
);
