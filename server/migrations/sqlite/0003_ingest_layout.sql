-- The layout built for ingest (see ARCHITECTURE.md, "The store's layout"). Measured with
-- Python's sqlite3 on the 2-core machine, 1 M two-field readings: the narrow text layout with
-- its covering index took 157k readings/s, one row per reading with packed values 453k/s,
-- per-series blocks of 250 points over 4 M/s. Here a flush writes one block per device.
--
-- Devices and series (a device's field) get small integer keys. Each block is a row of a
-- clustered B-tree (WITHOUT ROWID: the table is its own index, in device and time order);
-- its body holds the readings, delta-encoded, values as (series key, number) pairs (see
-- server/src/storage/packed.rs). Rollups hold per-minute and per-hour aggregates, kept up to
-- date in the same transaction as the blocks.
--
-- The old readings stay in readings_v1 until the store converts them on start-up (in Rust:
-- the blocks cannot be built in SQL), then that table is dropped.

ALTER TABLE readings RENAME TO readings_v1;

ALTER TABLE devices RENAME TO devices_v1;
CREATE TABLE devices (
    key           INTEGER PRIMARY KEY,
    id            TEXT    NOT NULL UNIQUE,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL,
    name          TEXT,             -- from the device's registration, if any
    registration  TEXT              -- the whole registration, as JSON
);
INSERT INTO devices (id, first_seen_ms, last_seen_ms, name, registration)
    SELECT id, first_seen_ms, last_seen_ms, name, registration FROM devices_v1 ORDER BY id;
DROP TABLE devices_v1;

-- One row per field a device has sent; first_ms/last_ms bound when it was used.
CREATE TABLE series (
    key      INTEGER PRIMARY KEY,
    device   INTEGER NOT NULL REFERENCES devices (key),
    field    TEXT    NOT NULL,
    first_ms INTEGER NOT NULL,
    last_ms  INTEGER NOT NULL,
    UNIQUE (device, field)
);

CREATE TABLE blocks (
    device    INTEGER NOT NULL,
    first_ms  INTEGER NOT NULL,     -- earliest receive time in the block
    first_seq INTEGER NOT NULL,     -- sequence number of its first reading
    last_ms   INTEGER NOT NULL,     -- latest receive time (at most an hour after first_ms)
    last_seq  INTEGER NOT NULL,
    readings  INTEGER NOT NULL,     -- how many it holds
    body      BLOB    NOT NULL,
    PRIMARY KEY (device, first_ms, first_seq)
) WITHOUT ROWID;

CREATE TABLE rollups (
    series   INTEGER NOT NULL,
    span_ms  INTEGER NOT NULL,      -- 60000 (a minute) or 3600000 (an hour)
    start_ms INTEGER NOT NULL,      -- aligned to the epoch
    minimum  REAL    NOT NULL,
    maximum  REAL    NOT NULL,
    total    REAL    NOT NULL,
    samples  INTEGER NOT NULL,
    PRIMARY KEY (series, span_ms, start_ms)
) WITHOUT ROWID;
