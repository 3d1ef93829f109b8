-- Monitoring accounts (issue 6): a probe's station and clinician accounts.
-- They are never counted as available clinicians, are only rung for test
-- calls directed at them, and may only place test calls.
ALTER TABLE users ADD COLUMN monitoring INTEGER NOT NULL DEFAULT 0;
