-- MIU Link schema, SQLite flavour. Times are UTC milliseconds since the Unix
-- epoch. Keep SQL portable where it costs nothing: a PostgreSQL flavour of
-- every migration lives beside this one when that backend is added.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    display_name  TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('station', 'clinician', 'manager', 'admin')),
    site          TEXT,
    password_hash TEXT    NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    demo          INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

-- One row per consult request: the current summary of its events.
CREATE TABLE consults (
    id                 INTEGER PRIMARY KEY,  -- the request id
    station_id         INTEGER NOT NULL,
    station_name       TEXT    NOT NULL,
    site               TEXT,
    urgency            TEXT    NOT NULL CHECK (urgency IN ('immediate', 'urgent', 'routine')),
    reason             TEXT    NOT NULL,
    patient_ref        TEXT,
    requested_at       INTEGER NOT NULL,
    status             TEXT    NOT NULL CHECK (status IN ('waiting', 'in_call', 'ended', 'completed', 'cancelled', 'abandoned')),
    first_rung_at      INTEGER,
    rung_count         INTEGER NOT NULL DEFAULT 0,
    closed_at          INTEGER,              -- cancelled or abandoned at
    call_id            INTEGER UNIQUE,
    clinician_id       INTEGER,
    clinician_name     TEXT,
    accepted_at        INTEGER,
    station_media_at   INTEGER,
    clinician_media_at INTEGER,
    connected_at       INTEGER,              -- both sides reported media
    ended_at           INTEGER,
    end_reason         TEXT,
    outcome            TEXT,
    outcome_note       TEXT,
    outcome_at         INTEGER,
    synthetic          INTEGER NOT NULL DEFAULT 0,  -- generated history, not real patients
    test_call          INTEGER NOT NULL DEFAULT 0   -- monitoring probe calls
);
CREATE INDEX consults_requested_at ON consults (requested_at);
CREATE INDEX consults_open ON consults (status) WHERE status IN ('waiting', 'in_call', 'ended');

-- Append-only: every transition, in order.
CREATE TABLE consult_events (
    id         INTEGER PRIMARY KEY,
    consult_id INTEGER NOT NULL REFERENCES consults (id),
    at         INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    detail     TEXT    NOT NULL  -- JSON of the event
);
CREATE INDEX consult_events_consult ON consult_events (consult_id, id);

CREATE TABLE presence_log (
    id      INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    status  TEXT    NOT NULL
);
CREATE INDEX presence_log_user ON presence_log (user_id, at);
