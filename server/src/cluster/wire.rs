//! What hubs tell each other over NATS, and on which subjects (pure: no I/O).
//!
//! `<prefix>.device.<id in hex>` carries what happens to one device (its presence, readings,
//! console lines, removal): one publisher per device at a time, so NATS keeps them in order.
//! `<prefix>.hub.<hub id>` carries what a hub says of itself: that it joined (`hello`: tell me
//! what you hold), everything it holds (`state`), that it is alive, and that it is leaving.
//! `<prefix>.command.<hub id>` is where a hub takes commands for the devices it holds, as
//! requests: no responder means no such hub is there (the device is offline).

use crate::registry::DeviceState;
use app::model::{Alarm, CommandInfo, CommandRequest, ConsoleLine, DeviceSummary, Reading};
use serde::{Deserialize, Serialize};

/// What one hub tells the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Told {
    /// One of its devices connected, changed or disconnected.
    Device { summary: DeviceSummary },
    /// Readings of one of its devices, oldest first, numbered by that hub.
    Readings {
        device: String,
        readings: Vec<Reading>,
    },
    /// A console line of one of its devices.
    Console { device: String, line: ConsoleLine },
    /// One of its devices was removed.
    Removed { device: String },
    /// A command to one of its devices was sent (from whichever hub) or changed status.
    Command { info: CommandInfo },
    /// Its alarm engine raised, acknowledged or cleared an alarm on one of its devices.
    Alarm { alarm: Alarm },
    /// It (re)joined: every hub answers with its `State`.
    Hello,
    /// Devices it holds, with their recent readings (all it holds come in one or more of
    /// these, then `Holding`).
    State { devices: Vec<DeviceState> },
    /// The ids of every device it holds, after its `State`: one it held before and does not
    /// list went offline meanwhile.
    Holding { devices: Vec<String> },
    /// It is still there (every [`super::ALIVE_EVERY`]).
    Alive,
    /// It is stopping: its devices are offline now.
    Gone,
}

/// A message on the wire: who tells, and what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub hub: String,
    pub told: Told,
}

/// A command one hub asks another to send to one of that hub's devices (on
/// [`Subjects::commands`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ask {
    /// The hub that asks.
    pub from: String,
    pub request: CommandRequest,
    /// The asking hub's number of the command, if it was queued there while the device was
    /// offline everywhere: the hub it connected to takes that record over.
    #[serde(default)]
    pub queued: Option<u64>,
}

/// The subjects of one system of hubs (`--cluster-prefix`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    pub fn new(prefix: &str) -> Subjects {
        Subjects {
            prefix: prefix.to_string(),
        }
    }

    /// The system's prefix (`--cluster-prefix`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Where `told` goes, when hub `hub` tells it.
    pub fn of(&self, hub: &str, told: &Told) -> String {
        match told {
            Told::Device { summary } => self.device(&summary.id),
            Told::Readings { device, .. }
            | Told::Console { device, .. }
            | Told::Removed { device } => self.device(device),
            Told::Command { info } => self.device(&info.device_id),
            Told::Alarm { alarm } => self.device(&alarm.device_id),
            Told::Hello | Told::State { .. } | Told::Holding { .. } | Told::Alive | Told::Gone => {
                format!("{}.hub.{hub}", self.prefix)
            }
        }
    }

    /// A device's subject. Device ids may hold dots, spaces and wildcards, which NATS reads
    /// as subject syntax: the id goes in as hex.
    pub fn device(&self, id: &str) -> String {
        format!("{}.device.{}", self.prefix, hex(id))
    }

    /// Every device's subject.
    pub fn devices(&self) -> String {
        format!("{}.device.*", self.prefix)
    }

    /// Every hub's subject.
    pub fn hubs(&self) -> String {
        format!("{}.hub.*", self.prefix)
    }

    /// Where hub `hub` takes commands for its devices (a request: the answer is a
    /// `Result<CommandInfo, String>`, its record of the command or why it could not send it).
    pub fn commands(&self, hub: &str) -> String {
        format!("{}.command.{hub}", self.prefix)
    }
}

/// The key-value bucket that says which hub holds which device (see `super::presence`).
pub fn presence_bucket(prefix: &str) -> String {
    format!("{prefix}_presence")
}

/// A device id as one subject token or key: its bytes in hex.
pub fn hex(id: &str) -> String {
    ::hex::encode(id)
}

/// The device id `hex` stands for, if it is one.
pub fn unhex(hex: &str) -> Option<String> {
    String::from_utf8(::hex::decode(hex).ok()?).ok()
}

/// Whether `token` may be one token of a subject (a hub id, the prefix): letters, digits, `-`
/// and `_`, 1 to 64 of them.
pub fn is_subject_token(token: &str) -> bool {
    (1..=64).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_subject_is_one_token_whatever_the_id() {
        let subjects = Subjects::new("iothub");
        assert_eq!(subjects.device("7"), "iothub.device.37");
        assert_eq!(subjects.device("a.b *>"), "iothub.device.612e62202a3e");
        assert_eq!(
            subjects.of("hub-1", &Told::Removed { device: "7".into() }),
            "iothub.device.37"
        );
        assert_eq!(subjects.of("hub-1", &Told::Alive), "iothub.hub.hub-1");
        assert_eq!(subjects.devices(), "iothub.device.*");
        assert_eq!(unhex(&hex("a.b *>ü")).as_deref(), Some("a.b *>ü"));
        for bad in ["6", "zz", "ff"] {
            assert_eq!(unhex(bad), None, "{bad}");
        }
        assert_eq!(subjects.hubs(), "iothub.hub.*");
    }

    #[test]
    fn subject_tokens_are_plain() {
        assert!(is_subject_token("hub-1_a"));
        for bad in ["", "a.b", "a b", "*", ">", "ü", &"x".repeat(65)] {
            assert!(!is_subject_token(bad), "{bad}");
        }
    }

    #[test]
    fn envelopes_read_back_as_written() {
        let envelope = Envelope {
            hub: "a".into(),
            told: Told::Console {
                device: "7".into(),
                line: ConsoleLine {
                    ms: 5,
                    direction: app::model::Direction::In,
                    text: "7,1,2".into(),
                },
            },
        };
        let json = serde_json::to_vec(&envelope).unwrap();
        assert_eq!(serde_json::from_slice::<Envelope>(&json).unwrap(), envelope);
    }
}
