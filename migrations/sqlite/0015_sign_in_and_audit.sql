-- Issue 15: sign-in through the trust's identity provider (OpenID
-- Connect), break-glass accounts, and the audit trail.

-- An account signed in through OpenID Connect is linked by the provider's
-- issuer and subject, never by a name that could be reused.
ALTER TABLE users ADD COLUMN oidc_issuer TEXT;
ALTER TABLE users ADD COLUMN oidc_subject TEXT;
CREATE UNIQUE INDEX users_oidc ON users (oidc_issuer, oidc_subject) WHERE oidc_subject IS NOT NULL;
-- An admin who may still sign in with a password when --local-login says
-- otherwise (the identity provider is down): see README, "Break-glass".
ALTER TABLE users ADD COLUMN break_glass INTEGER NOT NULL DEFAULT 0;

-- How a session was made ('password' or 'oidc') and, for OpenID Connect,
-- the ID token to hand back at sign-out (RP-initiated logout's hint).
ALTER TABLE sessions ADD COLUMN via TEXT NOT NULL DEFAULT 'password';
ALTER TABLE sessions ADD COLUMN id_token TEXT;

-- Sign-ins under way: the browser was sent to the provider and is
-- expected back with this state (stored as a hash) within ten minutes.
-- Taken (deleted) at the callback: a state is good once.
CREATE TABLE oidc_logins (
    state_hash    TEXT    PRIMARY KEY,
    binding_hash  TEXT    NOT NULL,  -- hash of the browser's sign-in cookie
    nonce         TEXT    NOT NULL,
    pkce_verifier TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);

-- Append-only: who did what, when, from where.
CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,
    actor_id INTEGER,               -- the account that acted, if any
    actor    TEXT    NOT NULL,      -- its username, or 'system', or 'command line (user)'
    action   TEXT    NOT NULL,
    target   TEXT,                  -- the account or thing acted on
    detail   TEXT    NOT NULL DEFAULT '{}',  -- JSON
    client   TEXT                   -- the client's address, when over HTTP
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
