//! Automations: the commands alarms send when they are raised or cleared (and schedules at
//! their times), each run logged with its commands, whose status is read from the registry
//! when the runs are listed.

use super::engine::{AlertError, Alerts};
use app::model::{Action, ActionTarget, AutomationRun, CommandRequest, CommandTarget};

impl Alerts {
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
