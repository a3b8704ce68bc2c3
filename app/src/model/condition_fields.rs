//! How a rule's condition is read from JSON (the REST API, the dashboard's snapshots).

use super::Condition;
use serde::Deserialize;

/// A condition as it arrives: every field any kind has. Serde's own decoding of an internally
/// tagged enum buffers the object into a tree of every value it could hold first, which took
/// 12 KiB of each browser bundle (the dashboard decodes rules with every snapshot); a flat
/// struct and [`Condition::try_from`] accept and refuse the same objects (but for a `null`
/// hold time, which counts as none).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConditionFields {
    kind: ConditionKind,
    field: Option<String>,
    threshold: Option<f64>,
    clear: Option<f64>,
    hold_s: Option<u32>,
    after_s: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ConditionKind {
    Above,
    Below,
    Offline,
    Silent,
}

impl TryFrom<ConditionFields> for Condition {
    type Error = String;

    fn try_from(c: ConditionFields) -> Result<Self, String> {
        let missing = |name: &str| format!("missing field `{name}`");
        let threshold_kind = matches!(c.kind, ConditionKind::Above | ConditionKind::Below);
        let unknown = if threshold_kind {
            c.after_s.is_some().then_some("after_s")
        } else {
            [
                ("field", c.field.is_some()),
                ("threshold", c.threshold.is_some()),
                ("clear", c.clear.is_some()),
                ("hold_s", c.hold_s.is_some()),
            ]
            .into_iter()
            .find_map(|(name, present)| present.then_some(name))
        };
        if let Some(name) = unknown {
            return Err(format!("unknown field `{name}` for this kind of condition"));
        }
        Ok(match c.kind {
            ConditionKind::Above | ConditionKind::Below => {
                let field = c.field.ok_or_else(|| missing("field"))?;
                let threshold = c.threshold.ok_or_else(|| missing("threshold"))?;
                let (clear, hold_s) = (c.clear, c.hold_s.unwrap_or(0));
                if matches!(c.kind, ConditionKind::Above) {
                    Condition::Above {
                        field,
                        threshold,
                        clear,
                        hold_s,
                    }
                } else {
                    Condition::Below {
                        field,
                        threshold,
                        clear,
                        hold_s,
                    }
                }
            }
            ConditionKind::Offline => Condition::Offline {
                after_s: c.after_s.ok_or_else(|| missing("after_s"))?,
            },
            ConditionKind::Silent => Condition::Silent {
                after_s: c.after_s.ok_or_else(|| missing("after_s"))?,
            },
        })
    }
}
