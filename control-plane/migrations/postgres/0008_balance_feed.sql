-- Balances for the data plane and low-balance alerts (issue 5).

-- The balance feed (GET /api/internal/balances): one global sequence, bumped by a trigger in
-- the same transaction as every change of a gated tenant's funds (balance, overdraft limit or
-- currency of a tenant with a limit, or the removal of its limit). The changed row records
-- the sequence value in feed_seq. Writers of the sequence serialize on its row (held to
-- commit), so sequence order is commit order and a reader that saw value N has seen every
-- change up to N: a cursor never skips a change, whoever made it.
CREATE TABLE balance_feed (
    id   BIGINT PRIMARY KEY,
    seq  BIGINT NOT NULL
);
INSERT INTO balance_feed (id, seq) VALUES (1, 0);

ALTER TABLE tenant_balances ADD COLUMN feed_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX tenant_balances_by_feed ON tenant_balances (feed_seq);

CREATE FUNCTION tenant_balances_feed() RETURNS trigger AS $$
BEGIN
    IF (NEW.overdraft_minor IS NOT NULL OR OLD.overdraft_minor IS NOT NULL)
       AND (NEW.balance_minor IS DISTINCT FROM OLD.balance_minor
            OR NEW.overdraft_minor IS DISTINCT FROM OLD.overdraft_minor
            OR NEW.currency IS DISTINCT FROM OLD.currency) THEN
        UPDATE balance_feed SET seq = seq + 1 WHERE id = 1 RETURNING seq INTO NEW.feed_seq;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER tenant_balances_feed BEFORE UPDATE ON tenant_balances
    FOR EACH ROW EXECUTE FUNCTION tenant_balances_feed();

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
