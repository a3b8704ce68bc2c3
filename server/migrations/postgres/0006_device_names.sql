-- A name a person gave the device (the REST API's rename); shown instead of the name the
-- device registered. NULL: the registered name (or the id).
ALTER TABLE devices ADD COLUMN display_name TEXT;
