-- Escalation (issue 5): who is alerted when nobody answers, and when each
-- step happened; call quality summaries from both sides.
ALTER TABLE users ADD COLUMN escalation_duty BIGINT NOT NULL DEFAULT 0;

ALTER TABLE consults ADD COLUMN realerted_at BIGINT;
ALTER TABLE consults ADD COLUMN escalated_at BIGINT;
-- The latest quality summary each side sent (JSON), for managers' reports.
ALTER TABLE consults ADD COLUMN station_quality TEXT;
ALTER TABLE consults ADD COLUMN clinician_quality TEXT;
