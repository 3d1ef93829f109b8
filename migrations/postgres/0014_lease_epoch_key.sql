-- The session log's fence check takes FOR KEY SHARE on the lease row
-- (src/store/lease.rs), no longer FOR SHARE: under continuous log writes a
-- share lock starved the leader's own renewal (a plain UPDATE of
-- expires_at) until it stood down. With `epoch` a key column, a takeover
-- (which raises the epoch) still waits for every open log transaction,
-- while renewing and handing back (which touch only expires_at) do not.
-- SQLite runs one instance and has no such table.
CREATE UNIQUE INDEX leader_lease_epoch ON leader_lease (epoch);
