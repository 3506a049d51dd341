-- The notifier (issue 7): delivery state of the `notifications` outbox (0007_billing.sql).
-- status: pending (waiting for its next attempt) -> delivered | failed (gave up after the
-- maximum attempts; `POST /api/notifications/{id}/retry` makes it pending again). Rows are
-- never deleted by the notifier.
-- next_attempt_at: when a pending row is due (NULL: due now; writers of the outbox need not
-- set it). claimed_by / claimed_until: the lease of the control plane delivering it; a row is
-- claimed with a conditional UPDATE, so two control planes never send it at the same time.
-- channels: JSON array of per-channel outcomes (`email:<address>`, `webhook`), so a retry
-- skips the channels already delivered.
ALTER TABLE notifications ADD COLUMN status TEXT NOT NULL DEFAULT 'pending';
ALTER TABLE notifications ADD COLUMN next_attempt_at TEXT;
ALTER TABLE notifications ADD COLUMN claimed_by TEXT;
ALTER TABLE notifications ADD COLUMN claimed_until TEXT;
ALTER TABLE notifications ADD COLUMN channels TEXT NOT NULL DEFAULT '[]';
ALTER TABLE notifications ADD COLUMN updated_at TEXT;
UPDATE notifications SET status = 'delivered' WHERE delivered_at IS NOT NULL;
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
CREATE INDEX notifications_by_time ON notifications (created_at);
