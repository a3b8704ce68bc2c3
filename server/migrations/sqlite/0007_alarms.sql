-- Alarm rules: which devices, what condition (JSON, app::model::Condition), and where to tell:
-- a webhook with the secret its requests are signed with (kept to sign; never shown), an
-- ntfy topic URL, an email address.
CREATE TABLE alarm_rules (
    id             INTEGER PRIMARY KEY,
    name           TEXT    NOT NULL,
    devices        TEXT    NOT NULL,
    condition_json TEXT    NOT NULL,
    webhook_url    TEXT,
    webhook_secret TEXT,
    ntfy_url       TEXT,
    email_to       TEXT,
    -- Commands sent when an alarm is raised and cleared (JSON, app::model::Action).
    on_raised      TEXT,
    on_cleared     TEXT,
    created_ms     INTEGER NOT NULL
);

-- Alarms: raised, perhaps acknowledged, cleared. An alarm without cleared_ms is up; after a
-- restart those are restored, so a condition that still holds does not raise a second one.
CREATE TABLE alarms (
    id            INTEGER PRIMARY KEY,
    rule_id       INTEGER NOT NULL,
    device_id     TEXT    NOT NULL,
    raised_ms     INTEGER NOT NULL,
    raised_value  REAL,
    acked_by      TEXT,
    acked_ms      INTEGER,
    cleared_ms    INTEGER,
    cleared_value REAL,
    -- What became of each channel's last delivery.
    webhook_delivery TEXT,
    ntfy_delivery    TEXT,
    email_delivery   TEXT
);
CREATE INDEX alarms_by_time ON alarms (raised_ms);
CREATE INDEX alarms_up ON alarms (rule_id, device_id) WHERE cleared_ms IS NULL;

-- Automation runs: what an alarm or a schedule sent. `commands` is the JSON list of the command
-- numbers (one per device), whose status the registry tracks while it can.
CREATE TABLE automation_runs (
    id          INTEGER PRIMARY KEY,
    source      TEXT    NOT NULL,
    at_ms       INTEGER NOT NULL,
    action_json TEXT    NOT NULL,
    commands    TEXT    NOT NULL,
    error       TEXT
);
CREATE INDEX automation_runs_by_time ON automation_runs (at_ms);

-- Schedules: a cron expression (in the hub's time zone) and the command it sends (JSON,
-- app::model::Action).
CREATE TABLE schedules (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    cron        TEXT    NOT NULL,
    action_json TEXT    NOT NULL,
    created_ms  INTEGER NOT NULL
);
