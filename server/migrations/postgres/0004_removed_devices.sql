-- A device removed from the dashboard (with or without its readings) keeps its row and keys,
-- marked with when it was removed; it is listed again once it sends readings received later.
ALTER TABLE devices ADD COLUMN removed_ms BIGINT;
