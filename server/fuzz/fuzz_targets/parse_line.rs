//! Fuzzes the device line parser: `cargo +nightly fuzz run parse_line` from `server/fuzz`.
//!
//! Whatever the bytes, `parse_line` and `DeviceId::parse` must not panic, what they accept must
//! obey the protocol (the same invariants as `server/tests/protocol_properties.rs`), and their
//! error messages must stay short.
#![no_main]

use std::collections::BTreeSet;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use server::protocol::{parse_line, DeviceId, DeviceMessage, ParseRules, MAX_NAME_CHARS};

/// Longest error message, in characters, whatever the input.
const MAX_ERROR_CHARS: usize = 300;
const MAX_UNIT_CHARS: usize = 16;
const MAX_COMMANDS: usize = 32;
const MAX_VARIABLE_CHARS: usize = 32;

fn rules() -> &'static ParseRules {
    static RULES: OnceLock<ParseRules> = OnceLock::new();
    RULES.get_or_init(|| ParseRules {
        csv_fields: vec!["counter".into(), "temp".into()],
        max_fields: 64,
    })
}

/// Device ids and field names: 1–64 characters, no control characters.
fn check_name(what: &str, name: &str) {
    let chars = name.chars().count();
    assert!(
        (1..=MAX_NAME_CHARS).contains(&chars),
        "{what} {name:?} has {chars} characters"
    );
    assert!(
        !name.chars().any(char::is_control),
        "{what} {name:?} has control characters"
    );
}

fn check_device_id(id: &DeviceId) {
    check_name("device id", id.as_str());
    assert_eq!(id.as_str().trim(), id.as_str(), "device id is not trimmed");
}

fn check_unique<'a>(names: impl Iterator<Item = &'a str>) {
    let names: Vec<&str> = names.collect();
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(
        unique.len(),
        names.len(),
        "duplicate field names: {names:?}"
    );
}

fn check_message(msg: &DeviceMessage, rules: &ParseRules) {
    if let Some(id) = msg.device_id() {
        check_device_id(id);
    }
    match msg {
        DeviceMessage::Reading(r) => {
            assert!(
                (1..=rules.max_fields).contains(&r.values.len()),
                "{} values, max {}",
                r.values.len(),
                rules.max_fields
            );
            for v in &r.values {
                check_name("field name", &v.field);
                assert!(v.value.is_finite(), "{v:?} is not finite");
            }
            check_unique(r.values.iter().map(|v| v.field.as_str()));
            if let Some(ms) = r.device_ms {
                assert!(ms >= 0, "negative device time {ms}");
            }
        }
        DeviceMessage::Register { registration, .. } => {
            if let Some(name) = &registration.name {
                check_name("display name", name);
            }
            assert!(registration.fields.len() <= rules.max_fields);
            for field in &registration.fields {
                check_name("registered field name", &field.name);
                if let Some(unit) = &field.unit {
                    assert!(unit.chars().count() <= MAX_UNIT_CHARS, "unit {unit:?}");
                    assert!(!unit.chars().any(char::is_control), "unit {unit:?}");
                }
            }
            check_unique(registration.fields.iter().map(|f| f.name.as_str()));
            assert!(registration.commands.len() <= MAX_COMMANDS);
            for command in &registration.commands {
                let n = &command.name;
                assert!(
                    (1..=MAX_VARIABLE_CHARS).contains(&n.len())
                        && n.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "command name {n:?}"
                );
                assert!(command.min.is_none_or(f64::is_finite), "{command:?}");
                assert!(command.max.is_none_or(f64::is_finite), "{command:?}");
                if let (Some(lo), Some(hi)) = (command.min, command.max) {
                    assert!(lo <= hi, "{command:?}");
                }
            }
        }
        DeviceMessage::Ack { .. } => {}
    }
}

fn check_error(err: &impl std::fmt::Display) {
    let text = err.to_string();
    let chars = text.chars().count();
    assert!(chars < MAX_ERROR_CHARS, "{chars}-character error: {text}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let rules = rules();
    match parse_line(line, rules) {
        Ok(msg) => check_message(&msg, rules),
        Err(err) => check_error(&err),
    }
    match DeviceId::parse(line) {
        Ok(id) => check_device_id(&id),
        Err(err) => check_error(&err),
    }
});
