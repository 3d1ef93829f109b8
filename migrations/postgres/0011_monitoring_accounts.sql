-- Monitoring accounts (issue 6): a probe's station and clinician accounts.
ALTER TABLE users ADD COLUMN monitoring BIGINT NOT NULL DEFAULT 0;
