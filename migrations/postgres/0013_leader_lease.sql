-- Leader and standby (issue 12): one row, the lease of the instance that
-- owns the switchboard. Judged by the database's clock (clock_timestamp()),
-- never by an instance's. `epoch` goes up by one with every new leader;
-- every session-log transaction checks it, under a share lock of this row,
-- so that a deposed leader can never commit (see src/store/lease.rs).
-- SQLite runs one instance and has no such table.
CREATE TABLE leader_lease (
    id         BIGINT      PRIMARY KEY CHECK (id = 1),
    holder     TEXT        NOT NULL,
    epoch      BIGINT      NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
