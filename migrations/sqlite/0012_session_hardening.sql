-- Issue 10 (hardening).
-- A session ends after an idle time with no live socket or request: the
-- server touches `last_seen_at` while the session is in use.
ALTER TABLE sessions ADD COLUMN last_seen_at INTEGER NOT NULL DEFAULT 0;
UPDATE sessions SET last_seen_at = created_at;
-- An account whose password was generated (the first admin) must choose
-- its own at first sign-in.
ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0;
