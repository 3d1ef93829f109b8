-- Report cache for the response-time dashboard.
--
-- A dashboard over a million consults must not read a million rows, so the
-- consults of each UTC day are packed into one blob (src/reports/packed.rs)
-- and a report reads about a thousand blobs. The consults table stays the
-- truth: every change to a consult bumps its day's version (the triggers
-- below, in the same transaction as the change), and a blob built from an
-- older version is rebuilt from the consults table on the next read.

-- chunk = UTC day = requested_at / 86400000.
CREATE TABLE report_chunk_versions (
    chunk   INTEGER PRIMARY KEY,
    version INTEGER NOT NULL
);

CREATE TABLE report_chunks (
    chunk   INTEGER PRIMARY KEY,
    version INTEGER NOT NULL,  -- the report_chunk_versions.version it was built from
    format  INTEGER NOT NULL,  -- packing format; other formats are rebuilt
    data    BLOB    NOT NULL
);

CREATE TRIGGER consults_report_insert AFTER INSERT ON consults BEGIN
    INSERT INTO report_chunk_versions (chunk, version) VALUES (NEW.requested_at / 86400000, 1)
        ON CONFLICT (chunk) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER consults_report_update AFTER UPDATE ON consults BEGIN
    INSERT INTO report_chunk_versions (chunk, version) VALUES (NEW.requested_at / 86400000, 1)
        ON CONFLICT (chunk) DO UPDATE SET version = version + 1;
    INSERT INTO report_chunk_versions (chunk, version) VALUES (OLD.requested_at / 86400000, 1)
        ON CONFLICT (chunk) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER consults_report_delete AFTER DELETE ON consults BEGIN
    INSERT INTO report_chunk_versions (chunk, version) VALUES (OLD.requested_at / 86400000, 1)
        ON CONFLICT (chunk) DO UPDATE SET version = version + 1;
END;

-- Consults logged before this migration: their days have no blob yet.
INSERT INTO report_chunk_versions (chunk, version)
    SELECT DISTINCT requested_at / 86400000, 1 FROM consults;
