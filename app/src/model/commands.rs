//! Commands as a person asks for them and as the dashboard follows them.

use super::CommandSpec;
use serde::{Deserialize, Serialize};

/// Who a command is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum CommandTarget {
    Device(String),
    /// Every device online at the moment it is sent.
    All,
}

/// Longest command variable name.
pub const MAX_VARIABLE_CHARS: usize = 32;
/// Longest command duration: one day.
pub const MAX_DURATION_MS: u64 = 86_400_000;

/// A command as a person asks for it: set `variable` to `value`, optionally for `duration_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CommandRequest {
    pub target: CommandTarget,
    pub variable: String,
    pub value: f64,
    pub duration_ms: Option<u64>,
    /// For one device that is offline (asleep, say): keep the command this long and deliver
    /// it, in order, when the device next connects. Unset: an offline device's command fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_ms: Option<u64>,
}

/// Longest a command may wait for its device: a week.
pub const MAX_QUEUE_MS: u64 = 7 * 86_400_000;

/// A command variable name: 1–32 ASCII letters, digits or `_`, not starting with a digit. Also
/// what a device may declare in its registration.
pub fn validate_variable(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_VARIABLE_CHARS
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "the variable must be 1–{MAX_VARIABLE_CHARS} letters, digits or _, starting with a letter"
        ))
    }
}

impl CommandRequest {
    /// Checks what both the form in the browser and the server must refuse. `spec` is the
    /// device's declaration of this command, if it made one.
    pub fn validate(&self, spec: Option<&CommandSpec>) -> Result<(), String> {
        validate_variable(&self.variable)?;
        if !self.value.is_finite() {
            return Err("the value must be a number".into());
        }
        if let Some(q) = self.queue_ms {
            if q == 0 || q > MAX_QUEUE_MS {
                return Err(format!(
                    "a command waits 1 to {MAX_QUEUE_MS} ms for its device"
                ));
            }
            if self.target == CommandTarget::All {
                return Err("only a command to one device can wait for it".into());
            }
        }
        if let Some(d) = self.duration_ms {
            if d == 0 || d > MAX_DURATION_MS {
                return Err(format!(
                    "the duration must be between 1 and {MAX_DURATION_MS} ms"
                ));
            }
        }
        if let Some(spec) = spec {
            if spec.min.is_some_and(|min| self.value < min)
                || spec.max.is_some_and(|max| self.value > max)
            {
                return Err(format!(
                    "{} accepts values from {} to {}",
                    spec.name,
                    spec.min.map_or("any".into(), |m| m.to_string()),
                    spec.max.map_or("any".into(), |m| m.to_string()),
                ));
            }
        }
        Ok(())
    }
}

impl CommandRequest {
    /// Builds a request from the command form's text fields (`target` is `all` or
    /// `device:<id>`), refusing what is not a number before anything is sent. `queue_ms` is how
    /// long the command may wait for an offline device, empty for not at all.
    pub fn from_form(
        target: &str,
        variable: &str,
        value: &str,
        duration_ms: &str,
        queue_ms: &str,
    ) -> Result<Self, String> {
        let target = match target.strip_prefix("device:") {
            Some(id) if !id.is_empty() => CommandTarget::Device(id.to_string()),
            _ if target == "all" => CommandTarget::All,
            _ => return Err("choose a device or All devices".into()),
        };
        let value = value.trim();
        let value = super::parse_decimal(value)
            .ok_or_else(|| format!("the value must be a number, not {value:?}"))?;
        let duration_ms = match duration_ms.trim() {
            "" => None,
            raw => Some(
                raw.parse::<u64>()
                    .map_err(|_| format!("the duration must be whole milliseconds, not {raw:?}"))?,
            ),
        };
        let queue_ms = match queue_ms.trim() {
            "" => None,
            raw => Some(raw.parse::<u64>().map_err(|_| {
                format!("the time to wait must be whole milliseconds, not {raw:?}")
            })?),
        };
        Ok(CommandRequest {
            target,
            variable: variable.trim().to_string(),
            value,
            duration_ms,
            queue_ms,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum CommandStatus {
    /// Waiting for its offline device to connect (see [`CommandRequest::queue_ms`]).
    Queued,
    /// Queued for the device's connection.
    Pending,
    /// Written to the device's connection.
    Delivered,
    /// The device confirmed it (`ack=<seq>`).
    Acked,
    /// No acknowledgement within the configured time.
    TimedOut,
    /// Could not be sent, with the reason (e.g. the device is offline).
    Failed(String),
    /// Queued for an offline device that did not connect in time.
    Expired,
}

impl CommandStatus {
    pub fn label(&self) -> &str {
        match self {
            CommandStatus::Queued => "queued",
            CommandStatus::Pending => "pending",
            CommandStatus::Delivered => "delivered",
            CommandStatus::Acked => "acked",
            CommandStatus::TimedOut => "timed out",
            CommandStatus::Failed(_) => "failed",
            CommandStatus::Expired => "expired",
        }
    }

    pub fn is_final(&self) -> bool {
        matches!(
            self,
            CommandStatus::Acked
                | CommandStatus::TimedOut
                | CommandStatus::Failed(_)
                | CommandStatus::Expired
        )
    }
}

/// One command to one device, and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CommandInfo {
    /// Sequence number, unique per server run; the device acknowledges with it.
    pub seq: u64,
    pub device_id: String,
    pub variable: String,
    pub value: f64,
    pub duration_ms: Option<u64>,
    pub status: CommandStatus,
    pub sent_ms: i64,
    pub updated_ms: i64,
}

/// The control a declared command gets on the page: a switch for a 0–1 range, a slider for any
/// other range with both ends (none without one: the command form covers those).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ControlKind {
    Switch,
    Slider { min: f64, max: f64, step: f64 },
}

impl CommandSpec {
    pub fn control(&self) -> Option<ControlKind> {
        let (min, max) = (self.min?, self.max?);
        if !(min.is_finite() && max.is_finite() && max > min) {
            return None;
        }
        if min == 0.0 && max == 1.0 && self.step.is_none_or(|s| s >= 1.0) {
            return Some(ControlKind::Switch);
        }
        let span = max - min;
        let step = self
            .step
            .filter(|s| s.is_finite() && *s > 0.0 && *s <= span)
            .unwrap_or(if span >= 10.0 { 1.0 } else { span / 100.0 });
        Some(ControlKind::Slider { min, max, step })
    }
}

/// What a control shows for one command of one device, from the commands the page knows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ControlState {
    /// The value the device acknowledged last.
    pub confirmed: Option<f64>,
    /// A value sent and not yet acknowledged: shown while the control waits.
    pub pending: Option<f64>,
    /// The last value sent was not acknowledged (timed out, or failed): the control is back
    /// at `confirmed` and says why.
    pub failed: Option<String>,
}

impl ControlState {
    /// The value to show: the one waiting for its ack, else the confirmed one.
    pub fn shown(&self) -> Option<f64> {
        self.pending.or(self.confirmed)
    }
}

/// The state of the control for `variable` on `device`, from commands in the order they were
/// sent (oldest first).
pub fn control_state<'a>(
    commands: impl IntoIterator<Item = &'a CommandInfo>,
    device: &str,
    variable: &str,
) -> ControlState {
    let mut state = ControlState::default();
    let mut last = None;
    for command in commands {
        if command.device_id != device || command.variable != variable {
            continue;
        }
        if command.status == CommandStatus::Acked {
            state.confirmed = Some(command.value);
        }
        last = Some(command);
    }
    match last.map(|c| (&c.status, c.value)) {
        Some((CommandStatus::Pending | CommandStatus::Delivered, value)) => {
            state.pending = Some(value);
        }
        Some((CommandStatus::TimedOut, _)) => state.failed = Some("not confirmed in time".into()),
        Some((CommandStatus::Failed(reason), _)) => state.failed = Some(reason.clone()),
        _ => {}
    }
    state
}
