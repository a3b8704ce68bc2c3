//! Alarm rules and alarms: the hub watches values and devices and raises an alarm when a rule's
//! condition holds ("temp above 30 for 60 s, clears below 28"; "offline for 5 min"), a person
//! acknowledges it, and it clears when the condition is over. Checked here, the same way in
//! the browser and on the server.

use serde::{Deserialize, Serialize};

/// Longest rule name.
pub const MAX_RULE_NAME_CHARS: usize = 100;
/// Longest hold or silence time: a week.
pub const MAX_RULE_SECONDS: u32 = 7 * 24 * 3600;

/// What a rule watches for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    deny_unknown_fields,
    try_from = "super::condition_fields::ConditionFields"
)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum Condition {
    /// `field` above `threshold` for `hold_s` seconds; clears below `clear` (default: the
    /// threshold), so a value hovering around the threshold does not raise it again and again.
    Above {
        field: String,
        threshold: f64,
        #[serde(default)]
        clear: Option<f64>,
        #[serde(default)]
        hold_s: u32,
    },
    /// `field` below `threshold` for `hold_s` seconds; clears above `clear` (default: the
    /// threshold).
    Below {
        field: String,
        threshold: f64,
        #[serde(default)]
        clear: Option<f64>,
        #[serde(default)]
        hold_s: u32,
    },
    /// The device offline for `after_s` seconds; clears when it is back.
    Offline { after_s: u32 },
    /// The device connected but sending no reading for `after_s` seconds; clears with the next.
    Silent { after_s: u32 },
}

/// Who an automation's command goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum ActionTarget {
    /// The device whose alarm it is.
    AlarmDevice,
    /// One device, by id.
    Device(String),
    /// Every device online at the time.
    All,
}

/// A command an alarm sends when it is raised or cleared (an automation): "when the kitchen is
/// too hot, turn the fan on".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Action {
    pub target: ActionTarget,
    pub variable: String,
    pub value: f64,
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// To one device: wait this long for it if it is offline (see `CommandRequest::queue_ms`).
    #[serde(default)]
    pub queue_ms: Option<u64>,
}

/// One automation run: what an alarm (or a schedule) sent, and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AutomationRun {
    pub id: i64,
    /// `rule 3 raised`, `rule 3 cleared`, `schedule 2`.
    pub source: String,
    pub at_ms: i64,
    pub action: Action,
    /// The commands sent (one per device), as they stand now if the hub still tracks them.
    pub commands: Vec<super::CommandInfo>,
    /// Why nothing was sent (the device offline, say).
    pub error: Option<String>,
}

/// A rule as a person writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NewRule {
    pub name: String,
    /// Which devices: an id, or a pattern with `*` (`kitchen-*`, or `*` for all).
    pub devices: String,
    pub condition: Condition,
    /// Where to POST raised and cleared alarms (JSON, signed with `webhook_secret`).
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// The HMAC-SHA256 key of the webhook's `X-IoTHub-Signature` header; never shown again.
    #[serde(default)]
    pub webhook_secret: Option<String>,
    /// An ntfy topic (`https://ntfy.sh/my-hub-alarms`, or a self-hosted one) to push to.
    #[serde(default)]
    pub ntfy_url: Option<String>,
    /// Where to email raised and cleared alarms (the hub needs `--smtp-url`).
    #[serde(default)]
    pub email_to: Option<String>,
    /// A command to send when the alarm is raised…
    #[serde(default)]
    pub on_raised: Option<Action>,
    /// …and when it clears.
    #[serde(default)]
    pub on_cleared: Option<Action>,
}

/// A stored rule (its webhook secret is not shown).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AlarmRule {
    pub id: i64,
    pub name: String,
    pub devices: String,
    pub condition: Condition,
    pub webhook_url: Option<String>,
    pub ntfy_url: Option<String>,
    pub email_to: Option<String>,
    pub on_raised: Option<Action>,
    pub on_cleared: Option<Action>,
    pub created_ms: i64,
}

/// One alarm: a rule's condition held for a device from `raised_ms` (until `cleared_ms`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Alarm {
    pub id: i64,
    pub rule_id: i64,
    pub rule_name: String,
    pub device_id: String,
    pub raised_ms: i64,
    /// The value that raised it (none for offline and silent rules).
    pub raised_value: Option<f64>,
    pub acked_by: Option<String>,
    pub acked_ms: Option<i64>,
    pub cleared_ms: Option<i64>,
    pub cleared_value: Option<f64>,
    /// What became of the last delivery on each channel the rule has ("raised: delivered",
    /// or the error of the last attempt).
    pub webhook_delivery: Option<String>,
    pub ntfy_delivery: Option<String>,
    pub email_delivery: Option<String>,
}

impl Condition {
    /// In words, for the Rules list: "temp above 30 for 60 s (clears at 28)".
    pub fn describe(&self) -> String {
        let threshold = |field: &str, how: &str, t: &f64, clear: &Option<f64>, hold: &u32| {
            let mut text = format!("{field} {how} {t}");
            if *hold > 0 {
                text.push_str(&format!(" for {hold} s"));
            }
            if let Some(c) = clear {
                text.push_str(&format!(" (clears at {c})"));
            }
            text
        };
        match self {
            Condition::Above {
                field,
                threshold: t,
                clear,
                hold_s,
            } => threshold(field, "above", t, clear, hold_s),
            Condition::Below {
                field,
                threshold: t,
                clear,
                hold_s,
            } => threshold(field, "below", t, clear, hold_s),
            Condition::Offline { after_s } => format!("offline for {after_s} s"),
            Condition::Silent { after_s } => format!("no reading for {after_s} s"),
        }
    }

    /// The field a threshold rule watches.
    pub fn field(&self) -> Option<&str> {
        match self {
            Condition::Above { field, .. } | Condition::Below { field, .. } => Some(field),
            Condition::Offline { .. } | Condition::Silent { .. } => None,
        }
    }
}

impl AlarmRule {
    /// Whether the rule watches `device` (its `devices` is an id or a pattern with `*`).
    pub fn covers(&self, device: &str) -> bool {
        wildmatch::WildMatch::new(&self.devices).matches(device)
    }
}

/// What a chart needs of an [`AlarmRule`]: its id, and for a threshold rule the field and the
/// level. A device page reads the rules it is sent (those that [cover](AlarmRule::covers) its
/// device: see [`crate::page_data::PageData::rules`]) as these, leaving the rest of each rule
/// undecoded; decoding whole rules took 16 KiB of the device page's bundle.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RuleThreshold {
    pub id: i64,
    condition: ThresholdOf,
}

/// A rule's condition as far as a chart goes: only `above` and `below` have a field and a
/// threshold.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct ThresholdOf {
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    threshold: Option<f64>,
}

impl RuleThreshold {
    /// The threshold line to draw on a chart of `field`, if the rule has one.
    pub fn threshold_for(&self, field: &str) -> Option<f64> {
        let condition = &self.condition;
        condition
            .threshold
            .filter(|_| condition.field.as_deref() == Some(field))
    }
}

/// The rule form's fields as typed (the Alarms page), before they are numbers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleForm {
    pub name: String,
    pub devices: String,
    /// `above`, `below`, `offline` or `silent`.
    pub kind: String,
    pub field: String,
    pub threshold: String,
    pub clear: String,
    /// Seconds: the hold time of a threshold, or how long offline or silent.
    pub seconds: String,
    pub webhook_url: String,
    pub webhook_secret: String,
    pub ntfy_url: String,
    pub email_to: String,
    /// A command to the alarm's device when raised and when cleared: `FAN=1`, `FAN=0`.
    pub on_raised: String,
    pub on_cleared: String,
}

impl RuleForm {
    /// A stored rule in the form, to edit it. The webhook secret is not shown, and left empty
    /// it stays as it is.
    pub fn from_rule(rule: &AlarmRule) -> RuleForm {
        let text = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        let command = |a: &Option<Action>| {
            a.as_ref()
                .map(|a| format!("{}={}", a.variable, a.value))
                .unwrap_or_default()
        };
        let (kind, field, threshold, clear, seconds) = match &rule.condition {
            Condition::Above {
                field,
                threshold,
                clear,
                hold_s,
            } => ("above", field.clone(), Some(*threshold), *clear, *hold_s),
            Condition::Below {
                field,
                threshold,
                clear,
                hold_s,
            } => ("below", field.clone(), Some(*threshold), *clear, *hold_s),
            Condition::Offline { after_s } => ("offline", String::new(), None, None, *after_s),
            Condition::Silent { after_s } => ("silent", String::new(), None, None, *after_s),
        };
        RuleForm {
            name: rule.name.clone(),
            devices: rule.devices.clone(),
            kind: kind.into(),
            field,
            threshold: text(threshold),
            clear: text(clear),
            seconds: if seconds == 0 {
                String::new()
            } else {
                seconds.to_string()
            },
            webhook_url: rule.webhook_url.clone().unwrap_or_default(),
            webhook_secret: String::new(),
            ntfy_url: rule.ntfy_url.clone().unwrap_or_default(),
            email_to: rule.email_to.clone().unwrap_or_default(),
            on_raised: command(&rule.on_raised),
            on_cleared: command(&rule.on_cleared),
        }
    }

    /// The rule the form describes, checked as the server will check it.
    pub fn to_rule(&self) -> Result<NewRule, String> {
        fn number(what: &str, raw: &str) -> Result<f64, String> {
            super::parse_decimal(raw.trim())
                .ok_or_else(|| format!("{what} must be a number, not {:?}", raw.trim()))
        }
        let optional = |raw: &str| Some(raw.trim().to_string()).filter(|s| !s.is_empty());
        let seconds = match self.seconds.trim() {
            "" => 0,
            raw => raw
                .parse::<u32>()
                .map_err(|_| format!("the time must be whole seconds, not {raw:?}"))?,
        };
        let field = self.field.trim().to_string();
        let clear = optional(&self.clear)
            .map(|c| number("the clear value", &c))
            .transpose()?;
        let condition = match self.kind.as_str() {
            "above" => Condition::Above {
                field,
                threshold: number("the threshold", &self.threshold)?,
                clear,
                hold_s: seconds,
            },
            "below" => Condition::Below {
                field,
                threshold: number("the threshold", &self.threshold)?,
                clear,
                hold_s: seconds,
            },
            "offline" => Condition::Offline { after_s: seconds },
            "silent" => Condition::Silent { after_s: seconds },
            other => return Err(format!("unknown kind of rule {other:?}")),
        };
        let action = |raw: &str| -> Result<Option<Action>, String> {
            let Some(raw) = optional(raw) else {
                return Ok(None);
            };
            let (variable, value) = raw
                .split_once('=')
                .ok_or_else(|| format!("a command is VARIABLE=value, like FAN=1, not {raw:?}"))?;
            Ok(Some(Action {
                target: ActionTarget::AlarmDevice,
                variable: variable.trim().to_string(),
                value: number("a command's value", value)?,
                duration_ms: None,
                queue_ms: None,
            }))
        };
        let rule = NewRule {
            name: self.name.trim().to_string(),
            devices: optional(&self.devices).unwrap_or_else(|| "*".into()),
            condition,
            webhook_secret: optional(&self.webhook_secret),
            webhook_url: optional(&self.webhook_url),
            ntfy_url: optional(&self.ntfy_url),
            email_to: optional(&self.email_to),
            on_raised: action(&self.on_raised)?,
            on_cleared: action(&self.on_cleared)?,
        };
        rule.validate()?;
        Ok(rule)
    }

    /// As [`RuleForm::to_rule`], for a rule being edited: an empty webhook secret keeps the
    /// stored one, so it is only checked by the server.
    pub fn to_changed_rule(&self) -> Result<NewRule, String> {
        if !self.webhook_url.trim().is_empty() && self.webhook_secret.trim().is_empty() {
            let placeholder = RuleForm {
                webhook_secret: "kept from the stored rule".into(),
                ..self.clone()
            };
            let mut rule = placeholder.to_rule()?;
            rule.webhook_secret = None;
            return Ok(rule);
        }
        self.to_rule()
    }
}

impl NewRule {
    /// What both the browser and the server refuse.
    pub fn validate(&self) -> Result<(), String> {
        let name = self.name.trim();
        if name.is_empty()
            || name.chars().count() > MAX_RULE_NAME_CHARS
            || name.chars().any(char::is_control)
        {
            return Err(format!(
                "a rule's name is 1 to {MAX_RULE_NAME_CHARS} characters without control characters"
            ));
        }
        let devices = self.devices.trim();
        if devices.is_empty() || devices.len() > 128 || devices.chars().any(char::is_control) {
            return Err("devices: an id or a pattern such as kitchen-* (or * for all)".into());
        }
        match &self.condition {
            Condition::Above {
                field,
                threshold,
                clear,
                hold_s,
            }
            | Condition::Below {
                field,
                threshold,
                clear,
                hold_s,
            } => {
                if field.trim().is_empty() || field.len() > 64 {
                    return Err("the field is the name of one of the device's values".into());
                }
                if !threshold.is_finite() || clear.is_some_and(|c| !c.is_finite()) {
                    return Err("the threshold and clear values must be numbers".into());
                }
                let above = matches!(self.condition, Condition::Above { .. });
                if let Some(clear) = clear {
                    if (above && *clear > *threshold) || (!above && *clear < *threshold) {
                        return Err(if above {
                            "an alarm above a threshold clears at or below it".into()
                        } else {
                            "an alarm below a threshold clears at or above it".into()
                        });
                    }
                }
                if *hold_s > MAX_RULE_SECONDS {
                    return Err(format!("hold at most {MAX_RULE_SECONDS} s"));
                }
            }
            Condition::Offline { after_s } | Condition::Silent { after_s } => {
                if *after_s == 0 || *after_s > MAX_RULE_SECONDS {
                    return Err(format!("after 1 to {MAX_RULE_SECONDS} s"));
                }
            }
        }
        if let Some(url) = &self.webhook_url {
            let ok = (url.starts_with("https://") || url.starts_with("http://"))
                && url.len() <= 2048
                && !url.chars().any(|c| c.is_control() || c.is_whitespace());
            if !ok {
                return Err("the webhook is an http:// or https:// URL".into());
            }
            if self.webhook_secret.as_deref().is_none_or(|s| s.len() < 16) {
                return Err(
                    "a webhook needs a secret of at least 16 characters to sign with".into(),
                );
            }
        }
        if let Some(url) = &self.ntfy_url {
            let ok = (url.starts_with("https://") || url.starts_with("http://"))
                && url.len() <= 2048
                && !url.chars().any(|c| c.is_control() || c.is_whitespace());
            if !ok {
                return Err("the ntfy topic is an http:// or https:// URL".into());
            }
        }
        for action in [&self.on_raised, &self.on_cleared].into_iter().flatten() {
            action.validate()?;
        }
        if let Some(to) = &self.email_to {
            let ok = to.len() <= 254
                && to.split_once('@').is_some_and(|(user, host)| {
                    !user.is_empty() && host.contains('.') && !host.starts_with('.')
                })
                && !to
                    .chars()
                    .any(|c| c.is_control() || c.is_whitespace() || c == ',');
            if !ok {
                return Err("the email address is one address, like you@example.org".into());
            }
        }
        Ok(())
    }
}

impl Action {
    /// What both sides refuse: the same checks as a command from the form.
    pub fn validate(&self) -> Result<(), String> {
        let target = match &self.target {
            ActionTarget::Device(id) if id.trim().is_empty() => {
                return Err("an automation's device id is empty".into())
            }
            ActionTarget::Device(id) => super::CommandTarget::Device(id.clone()),
            // One device, known when the alarm is raised: it may be waited for like any other.
            ActionTarget::AlarmDevice => super::CommandTarget::Device("alarm_device".into()),
            ActionTarget::All => super::CommandTarget::All,
        };
        super::CommandRequest {
            target,
            variable: self.variable.clone(),
            value: self.value,
            duration_ms: self.duration_ms,
            queue_ms: self.queue_ms,
        }
        .validate(None)
    }
}

/// A schedule as a person writes it: "every day at 07:30: LED=1 to kitchen".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NewSchedule {
    pub name: String,
    /// When, as a cron expression in the hub's time zone: `30 7 * * *` (minute hour day month
    /// weekday), or with seconds first (`0 30 7 * * *`).
    pub cron: String,
    /// What to send (to one device, or all; not `alarm_device`).
    pub action: Action,
}

/// A stored schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Schedule {
    pub id: i64,
    pub name: String,
    pub cron: String,
    pub action: Action,
    pub created_ms: i64,
}

impl NewSchedule {
    /// What both sides refuse (the cron expression itself is checked by the server).
    pub fn validate(&self) -> Result<(), String> {
        let name = self.name.trim();
        if name.is_empty()
            || name.chars().count() > MAX_RULE_NAME_CHARS
            || name.chars().any(char::is_control)
        {
            return Err(format!(
                "a schedule's name is 1 to {MAX_RULE_NAME_CHARS} characters without control characters"
            ));
        }
        if self.cron.trim().is_empty() || self.cron.len() > 128 {
            return Err("the schedule is a cron expression such as 30 7 * * *".into());
        }
        if self.action.target == ActionTarget::AlarmDevice {
            return Err("a schedule sends to a device or to all, not to an alarm's device".into());
        }
        self.action.validate()
    }
}
