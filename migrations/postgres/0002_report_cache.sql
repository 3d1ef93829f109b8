-- Report cache for the response-time dashboard: the same meaning as
-- migrations/sqlite/0002_report_cache.sql (see there). Every change to a
-- consult bumps its UTC day's version in the same transaction, here with a
-- trigger function instead of SQLite's trigger bodies.

CREATE TABLE report_chunk_versions (
    chunk   BIGINT PRIMARY KEY,
    version BIGINT NOT NULL
);

CREATE TABLE report_chunks (
    chunk   BIGINT PRIMARY KEY,
    version BIGINT NOT NULL,  -- the report_chunk_versions.version it was built from
    format  BIGINT NOT NULL,  -- packing format; other formats are rebuilt
    data    BYTEA  NOT NULL
);

CREATE FUNCTION miulink_bump_report_chunk(day BIGINT) RETURNS void AS $$
    INSERT INTO report_chunk_versions (chunk, version) VALUES (day, 1)
        ON CONFLICT (chunk) DO UPDATE SET version = report_chunk_versions.version + 1;
$$ LANGUAGE sql;

CREATE FUNCTION miulink_consults_report() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM miulink_bump_report_chunk(NEW.requested_at / 86400000);
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM miulink_bump_report_chunk(OLD.requested_at / 86400000);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER consults_report AFTER INSERT OR UPDATE OR DELETE ON consults
    FOR EACH ROW EXECUTE FUNCTION miulink_consults_report();

-- Consults logged before this migration: their days have no blob yet.
INSERT INTO report_chunk_versions (chunk, version)
    SELECT DISTINCT requested_at / 86400000, 1 FROM consults;
