-- One row per device ever seen.
CREATE TABLE devices (
    id            TEXT   PRIMARY KEY NOT NULL,
    first_seen_ms BIGINT NOT NULL,
    last_seen_ms  BIGINT NOT NULL,
    name          TEXT,             -- from the device's registration, if any
    registration  TEXT              -- the whole registration, as JSON
);

-- One row per field of each reading (a "narrow" layout): any number of fields per device, and
-- a chart of one field reads only that field's rows. `seq` tells apart readings of the same
-- millisecond.
CREATE TABLE readings (
    device_id   TEXT             NOT NULL,
    received_ms BIGINT           NOT NULL,
    seq         BIGINT           NOT NULL,
    device_ms   BIGINT,
    field       TEXT             NOT NULL,
    value       DOUBLE PRECISION NOT NULL
);

-- Covering (index-only scans): one device's rows are spread over every heap page because rows
-- arrive interleaved across devices. Measured on 10 M rows: the 24 h series query 733 → 183 ms,
-- at the cost of +23% insert time and a larger index.
CREATE INDEX readings_by_device_time ON readings (device_id, received_ms, seq) INCLUDE (field, value, device_ms);

-- Index-only scans need pages marked all-visible; with only inserts, vacuum sooner than the
-- default 20% growth so that recent hours qualify too.
ALTER TABLE readings SET (autovacuum_vacuum_insert_scale_factor = 0.01);
