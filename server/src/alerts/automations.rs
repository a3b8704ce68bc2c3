//! Automations: the commands alarms send when they are raised or cleared (and schedules at
//! their times), each run logged with its commands, whose status is read from the registry
//! when the runs are listed; and the rules of the config file, applied at start.

use super::handle::{AlertError, Alerts};
use app::model::{Action, ActionTarget, AutomationRun, CommandRequest, CommandTarget, NewRule};

impl Alerts {
    /// The config file's rules: each created, or brought up to date if a rule of that name
    /// exists (made by an earlier start, or in the dashboard). Rules not in the file stay.
    /// Returns how many were created and how many changed.
    pub async fn apply_config_rules(
        &self,
        rules: &[NewRule],
    ) -> Result<(usize, usize), AlertError> {
        let (mut created, mut changed) = (0, 0);
        for rule in rules {
            let stored = self.inner.store.rules().await?;
            let same_name = stored.iter().find(|s| s.rule.name == rule.name.trim());
            match same_name {
                None => {
                    self.create_rule(rule.clone()).await?;
                    created += 1;
                }
                Some(old) => {
                    let now = &old.rule;
                    let unchanged = now.devices == rule.devices.trim()
                        && now.condition == rule.condition
                        && now.webhook_url == rule.webhook_url
                        && now.ntfy_url == rule.ntfy_url
                        && now.email_to == rule.email_to
                        && now.on_raised == rule.on_raised
                        && now.on_cleared == rule.on_cleared
                        && (rule.webhook_secret.is_none()
                            || old.webhook_secret == rule.webhook_secret);
                    if !unchanged {
                        self.update_rule(now.id, rule.clone()).await?;
                        changed += 1;
                    }
                }
            }
        }
        Ok((created, changed))
    }

    /// Sends an automation's command (to `alarm_device` if it targets the alarm's device) and
    /// logs the run, sent or not.
    pub async fn run_action(&self, source: &str, action: &Action, alarm_device: Option<&str>) {
        let target = match (&action.target, alarm_device) {
            (ActionTarget::Device(id), _) => CommandTarget::Device(id.clone()),
            (ActionTarget::All, _) => CommandTarget::All,
            (ActionTarget::AlarmDevice, Some(device)) => CommandTarget::Device(device.to_string()),
            (ActionTarget::AlarmDevice, None) => CommandTarget::All,
        };
        // Waiting only makes sense for one device.
        let queue_ms = action.queue_ms.filter(|_| target != CommandTarget::All);
        let request = CommandRequest {
            target,
            variable: action.variable.clone(),
            value: action.value,
            duration_ms: action.duration_ms,
            queue_ms,
        };
        let (seqs, error) = match self.inner.registry.send_command(&request) {
            Ok(sent) => (sent.iter().map(|c| c.seq).collect::<Vec<_>>(), None),
            Err(err) => (Vec::new(), Some(err.to_string())),
        };
        tracing::info!(source, variable = %action.variable, commands = ?seqs, error, "automation ran");
        let now = crate::now_ms();
        if let Err(err) = self
            .inner
            .store
            .record_run(source, now, action, &seqs, error.as_deref())
            .await
        {
            tracing::error!(%err, "logging an automation run failed");
        }
    }

    /// The newest automation runs, with their commands as they stand now.
    pub async fn runs(&self, limit: u32) -> Result<Vec<AutomationRun>, AlertError> {
        let stored = self.inner.store.runs(limit).await?;
        Ok(stored
            .into_iter()
            .map(|run| AutomationRun {
                id: run.id,
                source: run.source,
                at_ms: run.at_ms,
                commands: run
                    .commands
                    .iter()
                    .filter_map(|seq| self.inner.registry.command(*seq))
                    .collect(),
                action: run.action,
                error: run.error,
            })
            .collect())
    }
}
