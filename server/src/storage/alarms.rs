//! Alarm rules and alarms (see [`crate::alerts`]): the same SQL on both back ends.

use super::{Backend, StorageError, Store};
use app::model::{Action, Alarm, AlarmRule, NewRule, NewSchedule, Schedule};

#[derive(sqlx::FromRow)]
struct RuleRow {
    id: i64,
    name: String,
    devices: String,
    condition_json: String,
    webhook_url: Option<String>,
    webhook_secret: Option<String>,
    ntfy_url: Option<String>,
    email_to: Option<String>,
    on_raised: Option<String>,
    on_cleared: Option<String>,
    created_ms: i64,
}

/// A rule with what the alerts need of it that nobody else sees (its webhook's secret).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRule {
    pub rule: AlarmRule,
    pub webhook_secret: Option<String>,
}

impl TryFrom<RuleRow> for StoredRule {
    type Error = StorageError;

    fn try_from(row: RuleRow) -> Result<StoredRule, StorageError> {
        let corrupt =
            |err: serde_json::Error| StorageError::Corrupt(format!("alarm rule {}: {err}", row.id));
        let condition = serde_json::from_str(&row.condition_json).map_err(corrupt)?;
        let action = |json: Option<String>| {
            json.map(|json| serde_json::from_str(&json).map_err(corrupt))
                .transpose()
        };
        Ok(StoredRule {
            rule: AlarmRule {
                id: row.id,
                name: row.name,
                devices: row.devices,
                condition,
                webhook_url: row.webhook_url,
                ntfy_url: row.ntfy_url,
                email_to: row.email_to,
                on_raised: action(row.on_raised)?,
                on_cleared: action(row.on_cleared)?,
                created_ms: row.created_ms,
            },
            webhook_secret: row.webhook_secret,
        })
    }
}

const RULE_COLUMNS: &str =
    "id, name, devices, condition_json, webhook_url, webhook_secret, ntfy_url, email_to, on_raised,
     on_cleared, created_ms";

#[derive(sqlx::FromRow)]
struct AlarmRow {
    id: i64,
    rule_id: i64,
    rule_name: Option<String>,
    device_id: String,
    raised_ms: i64,
    raised_value: Option<f64>,
    acked_by: Option<String>,
    acked_ms: Option<i64>,
    cleared_ms: Option<i64>,
    cleared_value: Option<f64>,
    webhook_delivery: Option<String>,
    ntfy_delivery: Option<String>,
    email_delivery: Option<String>,
}

impl From<AlarmRow> for Alarm {
    fn from(row: AlarmRow) -> Alarm {
        Alarm {
            id: row.id,
            rule_id: row.rule_id,
            // A rule deleted since: the alarm stays in the history.
            rule_name: row
                .rule_name
                .unwrap_or_else(|| format!("rule {}", row.rule_id)),
            device_id: row.device_id,
            raised_ms: row.raised_ms,
            raised_value: row.raised_value,
            acked_by: row.acked_by,
            acked_ms: row.acked_ms,
            cleared_ms: row.cleared_ms,
            cleared_value: row.cleared_value,
            webhook_delivery: row.webhook_delivery,
            ntfy_delivery: row.ntfy_delivery,
            email_delivery: row.email_delivery,
        }
    }
}

const ALARM_SELECT: &str = "SELECT a.id, a.rule_id, r.name AS rule_name, a.device_id, a.raised_ms,
    a.raised_value, a.acked_by, a.acked_ms, a.cleared_ms, a.cleared_value, a.webhook_delivery,
    a.ntfy_delivery, a.email_delivery
    FROM alarms a LEFT JOIN alarm_rules r ON r.id = a.rule_id";

/// Where an alarm is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Webhook,
    Ntfy,
    Email,
}

impl Channel {
    pub fn label(self) -> &'static str {
        match self {
            Channel::Webhook => "webhook",
            Channel::Ntfy => "ntfy",
            Channel::Email => "email",
        }
    }
}

/// Which alarms to list.
#[derive(Debug, Clone, Default)]
pub struct AlarmFilter {
    pub active_only: bool,
    pub device: Option<String>,
    pub rule: Option<i64>,
    pub limit: u32,
}

/// A rule's condition and automations, as their columns hold them.
fn rule_json(new: &NewRule) -> Result<(String, Option<String>, Option<String>), StorageError> {
    let json = |value: &dyn erased::Json| value.json();
    let on_raised = new.on_raised.as_ref().map(|a| json(a)).transpose()?;
    let on_cleared = new.on_cleared.as_ref().map(|a| json(a)).transpose()?;
    Ok((json(&new.condition)?, on_raised, on_cleared))
}

impl Store {
    pub async fn create_rule(
        &self,
        new: &NewRule,
        now_ms: i64,
    ) -> Result<StoredRule, StorageError> {
        let (condition, on_raised, on_cleared) = rule_json(new)?;
        let sql = format!(
            "INSERT INTO alarm_rules (name, devices, condition_json, webhook_url, webhook_secret,
                                      ntfy_url, email_to, on_raised, on_cleared, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {RULE_COLUMNS}"
        );
        let row: RuleRow = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(new.name.trim())
                .bind(new.devices.trim())
                .bind(&condition)
                .bind(&new.webhook_url)
                .bind(&new.webhook_secret)
                .bind(&new.ntfy_url)
                .bind(&new.email_to)
                .bind(&on_raised)
                .bind(&on_cleared)
                .bind(now_ms)
                .fetch_one(pool)
                .await?
        });
        row.try_into()
    }

    pub async fn rules(&self) -> Result<Vec<StoredRule>, StorageError> {
        let sql = format!("SELECT {RULE_COLUMNS} FROM alarm_rules ORDER BY id");
        let rows: Vec<RuleRow> =
            on_pool!(self, |pool| { sqlx::query_as(&sql).fetch_all(pool).await? });
        rows.into_iter().map(StoredRule::try_from).collect()
    }

    /// Replaces rule `id`'s definition (its id and creation time stay); its alarms that are up
    /// clear (the engine raises them again if the new definition holds). `None`: no such rule.
    pub async fn update_rule(
        &self,
        id: i64,
        new: &NewRule,
        now_ms: i64,
    ) -> Result<Option<StoredRule>, StorageError> {
        let (condition, on_raised, on_cleared) = rule_json(new)?;
        let sql = format!(
            "UPDATE alarm_rules SET name = $2, devices = $3, condition_json = $4,
                 webhook_url = $5, webhook_secret = $6, ntfy_url = $7, email_to = $8,
                 on_raised = $9, on_cleared = $10
             WHERE id = $1 RETURNING {RULE_COLUMNS}"
        );
        let row: Option<RuleRow> = on_pool!(self, |pool| {
            let row = sqlx::query_as(&sql)
                .bind(id)
                .bind(new.name.trim())
                .bind(new.devices.trim())
                .bind(&condition)
                .bind(&new.webhook_url)
                .bind(&new.webhook_secret)
                .bind(&new.ntfy_url)
                .bind(&new.email_to)
                .bind(&on_raised)
                .bind(&on_cleared)
                .fetch_optional(pool)
                .await?;
            sqlx::query(
                "UPDATE alarms SET cleared_ms = $2 WHERE rule_id = $1 AND cleared_ms IS NULL",
            )
            .bind(id)
            .bind(now_ms)
            .execute(pool)
            .await?;
            row
        });
        row.map(StoredRule::try_from).transpose()
    }

    /// Deletes a rule; its alarms stay in the history, cleared if they were up.
    pub async fn delete_rule(&self, id: i64, now_ms: i64) -> Result<bool, StorageError> {
        let done = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE alarms SET cleared_ms = $2 WHERE rule_id = $1 AND cleared_ms IS NULL",
            )
            .bind(id)
            .bind(now_ms)
            .execute(pool)
            .await?;
            sqlx::query("DELETE FROM alarm_rules WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    pub async fn raise_alarm(
        &self,
        rule_id: i64,
        device_id: &str,
        raised_ms: i64,
        value: Option<f64>,
    ) -> Result<i64, StorageError> {
        let (id,): (i64,) = on_pool!(self, |pool| {
            sqlx::query_as(
                "INSERT INTO alarms (rule_id, device_id, raised_ms, raised_value)
                 VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(rule_id)
            .bind(device_id)
            .bind(raised_ms)
            .bind(value)
            .fetch_one(pool)
            .await?
        });
        Ok(id)
    }

    pub async fn clear_alarm(
        &self,
        id: i64,
        cleared_ms: i64,
        value: Option<f64>,
    ) -> Result<(), StorageError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE alarms SET cleared_ms = $2, cleared_value = $3
                 WHERE id = $1 AND cleared_ms IS NULL",
            )
            .bind(id)
            .bind(cleared_ms)
            .bind(value)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// Notes who acknowledged an alarm; `None` if there is no such alarm.
    pub async fn ack_alarm(
        &self,
        id: i64,
        user: &str,
        now_ms: i64,
    ) -> Result<Option<Alarm>, StorageError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE alarms SET acked_by = $2, acked_ms = $3 WHERE id = $1 AND acked_ms IS NULL",
            )
            .bind(id)
            .bind(user)
            .bind(now_ms)
            .execute(pool)
            .await?
            .rows_affected()
        });
        self.alarm(id).await
    }

    pub async fn note_delivery(
        &self,
        id: i64,
        channel: Channel,
        delivery: &str,
    ) -> Result<(), StorageError> {
        let sql = match channel {
            Channel::Webhook => "UPDATE alarms SET webhook_delivery = $2 WHERE id = $1",
            Channel::Ntfy => "UPDATE alarms SET ntfy_delivery = $2 WHERE id = $1",
            Channel::Email => "UPDATE alarms SET email_delivery = $2 WHERE id = $1",
        };
        on_pool!(self, |pool| {
            sqlx::query(sql)
                .bind(id)
                .bind(delivery)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    pub async fn alarm(&self, id: i64) -> Result<Option<Alarm>, StorageError> {
        let sql = format!("{ALARM_SELECT} WHERE a.id = $1");
        let row: Option<AlarmRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        });
        Ok(row.map(Alarm::from))
    }

    /// Alarms, newest first.
    pub async fn alarms(&self, filter: &AlarmFilter) -> Result<Vec<Alarm>, StorageError> {
        let sql = format!(
            "{ALARM_SELECT} WHERE ($1 = 0 OR a.cleared_ms IS NULL)
               AND (CAST($2 AS TEXT) IS NULL OR a.device_id = $2)
               AND (CAST($3 AS BIGINT) IS NULL OR a.rule_id = $3)
             ORDER BY a.raised_ms DESC, a.id DESC LIMIT $4"
        );
        let rows: Vec<AlarmRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(i64::from(filter.active_only))
                .bind(&filter.device)
                .bind(filter.rule)
                .bind(i64::from(filter.limit.max(1)))
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(Alarm::from).collect())
    }
}

/// Turning a value into the JSON kept in a column.
mod erased {
    use super::StorageError;

    pub trait Json {
        fn json(&self) -> Result<String, StorageError>;
    }

    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> Result<String, StorageError> {
            serde_json::to_string(self).map_err(|err| StorageError::Corrupt(err.to_string()))
        }
    }
}

/// A row of `automation_runs`, before the commands' current status is filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRun {
    pub id: i64,
    pub source: String,
    pub at_ms: i64,
    pub action: Action,
    pub commands: Vec<u64>,
    pub error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct RunRow {
    id: i64,
    source: String,
    at_ms: i64,
    action_json: String,
    commands: String,
    error: Option<String>,
}

impl Store {
    pub async fn record_run(
        &self,
        source: &str,
        at_ms: i64,
        action: &Action,
        commands: &[u64],
        error: Option<&str>,
    ) -> Result<i64, StorageError> {
        use erased::Json;
        let (action, commands) = (action.json()?, commands.json()?);
        let (id,): (i64,) = on_pool!(self, |pool| {
            sqlx::query_as(
                "INSERT INTO automation_runs (source, at_ms, action_json, commands, error)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(source)
            .bind(at_ms)
            .bind(&action)
            .bind(&commands)
            .bind(error)
            .fetch_one(pool)
            .await?
        });
        Ok(id)
    }

    /// The newest automation runs first.
    pub async fn runs(&self, limit: u32) -> Result<Vec<StoredRun>, StorageError> {
        let rows: Vec<RunRow> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, source, at_ms, action_json, commands, error FROM automation_runs
                 ORDER BY at_ms DESC, id DESC LIMIT $1",
            )
            .bind(i64::from(limit.max(1)))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|row| {
                let corrupt = |err: serde_json::Error| {
                    StorageError::Corrupt(format!("run {}: {err}", row.id))
                };
                Ok(StoredRun {
                    id: row.id,
                    source: row.source,
                    at_ms: row.at_ms,
                    action: serde_json::from_str(&row.action_json).map_err(corrupt)?,
                    commands: serde_json::from_str(&row.commands).map_err(corrupt)?,
                    error: row.error,
                })
            })
            .collect()
    }
}

#[derive(sqlx::FromRow)]
struct ScheduleRow {
    id: i64,
    name: String,
    cron: String,
    action_json: String,
    created_ms: i64,
}

impl TryFrom<ScheduleRow> for Schedule {
    type Error = StorageError;

    fn try_from(row: ScheduleRow) -> Result<Schedule, StorageError> {
        Ok(Schedule {
            action: serde_json::from_str(&row.action_json)
                .map_err(|err| StorageError::Corrupt(format!("schedule {}: {err}", row.id)))?,
            id: row.id,
            name: row.name,
            cron: row.cron,
            created_ms: row.created_ms,
        })
    }
}

impl Store {
    pub async fn create_schedule(
        &self,
        new: &NewSchedule,
        now_ms: i64,
    ) -> Result<Schedule, StorageError> {
        use erased::Json;
        let action = new.action.json()?;
        let row: ScheduleRow = on_pool!(self, |pool| {
            sqlx::query_as(
                "INSERT INTO schedules (name, cron, action_json, created_ms) VALUES ($1, $2, $3, $4)
                 RETURNING id, name, cron, action_json, created_ms",
            )
            .bind(new.name.trim())
            .bind(new.cron.trim())
            .bind(&action)
            .bind(now_ms)
            .fetch_one(pool)
            .await?
        });
        row.try_into()
    }

    pub async fn schedules(&self) -> Result<Vec<Schedule>, StorageError> {
        let rows: Vec<ScheduleRow> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, name, cron, action_json, created_ms FROM schedules ORDER BY id",
            )
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(Schedule::try_from).collect()
    }

    pub async fn delete_schedule(&self, id: i64) -> Result<bool, StorageError> {
        let done = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM schedules WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }
}
