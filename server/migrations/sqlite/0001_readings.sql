-- One row per device ever seen.
CREATE TABLE devices (
    id            TEXT   PRIMARY KEY NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL,
    name          TEXT,             -- from the device's registration, if any
    registration  TEXT              -- the whole registration, as JSON
);

-- One row per field of each reading (a "narrow" layout): any number of fields per device, and
-- a chart of one field reads only that field's rows. `seq` tells apart readings of the same
-- millisecond.
CREATE TABLE readings (
    device_id   TEXT    NOT NULL,
    received_ms INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    device_ms   INTEGER,            -- the device's own timestamp, when it sent one
    field       TEXT    NOT NULL,
    value       REAL    NOT NULL
);

-- Covering: a chart's window or an export reads only this index, never the table, whose rows
-- of one device are spread over every page (rows arrive interleaved across devices). Measured
-- on 10 M rows: the 24 h series query 280 → 112 ms; bulk insert no slower; file +22%.
CREATE INDEX readings_by_device_time ON readings (device_id, received_ms, seq, field, value, device_ms);
