-- Traffic protection (issue 4): what each proxy reports about its breakers, upstream
-- services and rate-limit refusals, kept with its latest heartbeat (JSON text, as sent).
ALTER TABLE proxy_instances ADD COLUMN protection_report TEXT;
