//! Pure parsing of what devices send: one text line in, one reading (or a clear error) out.
//!
//! Three dialects, told apart by the line itself:
//! - positional CSV, `7,42,23.5`: the device id, then values named by the configured list;
//! - `key=value` pairs, `id=7,temp=23.5,hum=40` (the id may instead come from the connection);
//! - a JSON object, `{"id":"7","temp":23.5}`.
//!
//! Besides readings a device may acknowledge a command (`ack=12`, `{"ack":12}`) and describe
//! itself with a JSON registration line (`{"register":{"name":…,"fields":[…],"commands":[…]}}`).
//! Commands go back in the dialect the device speaks ([`format_command`]).
//!
//! Everything here is hostile input: lengths are bounded, numbers must be finite, and names may
//! not hold control characters. No I/O happens here, so every case is a unit test.

use app::model::{FieldValue, Name, Registration};
use std::fmt;

/// Longest device id or field name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// A device id that passed validation: 1–64 characters, no control characters, no surrounding
/// white space. Anything else (markup included) is allowed and is escaped wherever it is shown.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(String);

impl DeviceId {
    pub fn parse(raw: &str) -> Result<Self, ProtocolError> {
        validate_name(raw.trim(), NameKind::DeviceId).map(|s| DeviceId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Maps keyed by id can be searched with a plain `&str` (hashed and compared as its `String`).
impl std::borrow::Borrow<str> for DeviceId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Csv,
    KeyValue,
    Json,
    /// `|START|KEY=VALUE|…|END|` messages of raw TCP devices (see [`crate::devices::stream`]); their
    /// contents are parsed as key=value.
    Framed,
}

/// Everything a device may send on one line.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceMessage {
    Reading(ParsedReading),
    /// The device confirms command `seq`.
    Ack {
        device_id: Option<DeviceId>,
        seq: u64,
        dialect: Dialect,
    },
    Register {
        device_id: Option<DeviceId>,
        registration: Registration,
    },
    /// `sync=<n>`: the device asks to be told (`stored=<n>`, see [`format_stored`]) once every
    /// reading it sent before is in the database, so it may forget them.
    Sync {
        device_id: Option<DeviceId>,
        n: u64,
        dialect: Dialect,
    },
}

impl DeviceMessage {
    /// The device id the line names, if any.
    pub fn device_id(&self) -> Option<&DeviceId> {
        match self {
            DeviceMessage::Reading(r) => r.device_id.as_ref(),
            DeviceMessage::Ack { device_id, .. }
            | DeviceMessage::Register { device_id, .. }
            | DeviceMessage::Sync { device_id, .. } => device_id.as_ref(),
        }
    }
}

/// A line that parsed as a reading.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedReading {
    pub dialect: Dialect,
    /// Absent when a `key=value` or JSON line leaves it to the connection.
    pub device_id: Option<DeviceId>,
    /// The device's own timestamp (JSON `"ts"`, ms since the epoch), if given.
    pub device_ms: Option<i64>,
    pub values: Vec<FieldValue>,
}

/// What the parser needs to know besides the line.
#[derive(Debug, Clone)]
pub struct ParseRules {
    /// Names for positional CSV values, in order (shared: every reading's values point to them).
    pub csv_fields: std::sync::Arc<[Name]>,
    pub max_fields: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    DeviceId,
    Field,
    DisplayName,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::DeviceId => "device id",
            NameKind::Field => "field name",
            NameKind::DisplayName => "display name",
        })
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProtocolError {
    #[error("empty line")]
    Empty,
    #[error("{0} is empty")]
    EmptyName(NameKind),
    #[error("{0} is longer than {MAX_NAME_CHARS} characters")]
    NameTooLong(NameKind),
    #[error("{0} contains control characters")]
    ControlCharacters(NameKind),
    #[error("no values after the device id")]
    NoValues,
    #[error("field {field}: {value} is not a finite number")]
    NotANumber { field: String, value: String },
    #[error("{count} fields, more than the {max} allowed")]
    TooManyFields { count: usize, max: usize },
    #[error("field {0} appears twice")]
    DuplicateField(String),
    #[error("{0} is not a key=value pair")]
    NotAPair(String),
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("a JSON reading must be an object")]
    JsonNotAnObject,
    #[error("ack must be a command sequence number, got {0}")]
    BadAck(String),
    #[error("sync must be a whole number, got {0}")]
    BadSync(String),
    #[error("\"ts\" must be milliseconds since the epoch")]
    BadTimestamp,
    #[error("invalid registration: {0}")]
    BadRegistration(String),
}

/// Parses one line (without its line ending).
pub fn parse_line(line: &str, rules: &ParseRules) -> Result<DeviceMessage, ProtocolError> {
    let line = line.trim();
    if line.is_empty() {
        return Err(ProtocolError::Empty);
    }
    if line.starts_with('{') {
        parse_json(line, rules)
    } else if line.contains('=') {
        parse_key_value(line, rules)
    } else {
        parse_csv(line, rules).map(DeviceMessage::Reading)
    }
}

fn parse_csv(line: &str, rules: &ParseRules) -> Result<ParsedReading, ProtocolError> {
    let mut parts = line.split(',');
    let id = DeviceId::parse(parts.next().unwrap_or_default())?;
    let raw: Vec<&str> = parts.collect();
    if raw.is_empty() {
        return Err(ProtocolError::NoValues);
    }
    check_field_count(raw.len(), rules)?;
    let values = raw
        .iter()
        .zip(csv_names(&rules.csv_fields, raw.len()))
        .map(|(value, field)| parse_number(&field, value).map(|value| FieldValue { field, value }))
        .collect::<Result<Vec<_>, _>>()?;
    // Only possible with a configured list that repeats a name; registrations cannot.
    for (i, v) in values.iter().enumerate() {
        if values[..i].iter().any(|earlier| earlier.field == v.field) {
            return Err(ProtocolError::DuplicateField(quote(&v.field)));
        }
    }
    Ok(ParsedReading {
        dialect: Dialect::Csv,
        device_id: Some(id),
        device_ms: None,
        values,
    })
}

/// Names for `count` positional values: the configured (or registered) names in order, then
/// `f<position>` — skipping any `f<n>` the list already uses, so names never repeat.
pub fn csv_names(named: &[Name], count: usize) -> Vec<Name> {
    let mut names: Vec<Name> = named.iter().take(count).cloned().collect();
    let mut n = names.len() + 1;
    while names.len() < count {
        let candidate = format!("f{n}");
        n += 1;
        let taken = |list: &[Name]| list.iter().any(|name| **name == *candidate);
        if !taken(named) && !taken(&names) {
            names.push(candidate.into());
        }
    }
    names
}

fn parse_key_value(line: &str, rules: &ParseRules) -> Result<DeviceMessage, ProtocolError> {
    let mut device_id = None;
    let mut ack = None;
    let mut sync = None;
    let mut values: Vec<FieldValue> = Vec::new();
    for pair in line.split(',') {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| ProtocolError::NotAPair(quote(pair)))?;
        let key = key.trim();
        if key.eq_ignore_ascii_case("id") {
            device_id = Some(DeviceId::parse(value)?);
        } else if key.eq_ignore_ascii_case("ack") {
            let seq = value
                .trim()
                .parse()
                .map_err(|_| ProtocolError::BadAck(quote(value)))?;
            ack = Some(seq);
        } else if key.eq_ignore_ascii_case("sync") {
            let n = value
                .trim()
                .parse()
                .map_err(|_| ProtocolError::BadSync(quote(value)))?;
            sync = Some(n);
        } else {
            let field = validate_name(key, NameKind::Field)?;
            push_value(&mut values, field, parse_number(field, value)?, rules)?;
        }
    }
    if let Some(seq) = ack {
        return Ok(DeviceMessage::Ack {
            device_id,
            seq,
            dialect: Dialect::KeyValue,
        });
    }
    if let Some(n) = sync {
        return Ok(DeviceMessage::Sync {
            device_id,
            n,
            dialect: Dialect::KeyValue,
        });
    }
    if values.is_empty() {
        return Err(ProtocolError::NoValues);
    }
    Ok(DeviceMessage::Reading(ParsedReading {
        dialect: Dialect::KeyValue,
        device_id,
        device_ms: None,
        values,
    }))
}

fn parse_json(line: &str, rules: &ParseRules) -> Result<DeviceMessage, ProtocolError> {
    let parsed: serde_json::Value =
        serde_json::from_str(line).map_err(|e| ProtocolError::Json(cut(&e.to_string())))?;
    let serde_json::Value::Object(mut object) = parsed else {
        return Err(ProtocolError::JsonNotAnObject);
    };
    let device_id = match object.shift_remove("id") {
        None => None,
        Some(serde_json::Value::String(s)) => Some(DeviceId::parse(&s)?),
        Some(serde_json::Value::Number(n)) => Some(DeviceId::parse(&n.to_string())?),
        Some(other) => {
            return Err(ProtocolError::NotANumber {
                field: quote("id"),
                value: quote(&other.to_string()),
            });
        }
    };
    if let Some(registration) = object.shift_remove("register") {
        return parse_registration(registration, device_id, rules);
    }
    if let Some(ack) = object.shift_remove("ack") {
        let seq = ack
            .as_u64()
            .ok_or_else(|| ProtocolError::BadAck(quote(&ack.to_string())))?;
        return Ok(DeviceMessage::Ack {
            device_id,
            seq,
            dialect: Dialect::Json,
        });
    }
    if let Some(sync) = object.shift_remove("sync") {
        let n = sync
            .as_u64()
            .ok_or_else(|| ProtocolError::BadSync(quote(&sync.to_string())))?;
        return Ok(DeviceMessage::Sync {
            device_id,
            n,
            dialect: Dialect::Json,
        });
    }
    let device_ms = match object.shift_remove("ts") {
        None => None,
        Some(ts) => Some(
            ts.as_i64()
                .filter(|ms| *ms >= 0)
                .ok_or(ProtocolError::BadTimestamp)?,
        ),
    };
    let mut values: Vec<FieldValue> = Vec::new();
    for (key, value) in &object {
        let field = validate_name(key, NameKind::Field)?;
        let number =
            value
                .as_f64()
                .filter(|v| v.is_finite())
                .ok_or_else(|| ProtocolError::NotANumber {
                    field: quote(field),
                    value: quote(&value.to_string()),
                })?;
        push_value(&mut values, field, number, rules)?;
    }
    if values.is_empty() {
        return Err(ProtocolError::NoValues);
    }
    Ok(DeviceMessage::Reading(ParsedReading {
        dialect: Dialect::Json,
        device_id,
        device_ms,
        values,
    }))
}

/// Longest unit, display-name and command-list lengths a registration may use.
const MAX_UNIT_CHARS: usize = 16;
const MAX_COMMANDS: usize = 32;

fn parse_registration(
    raw: serde_json::Value,
    device_id: Option<DeviceId>,
    rules: &ParseRules,
) -> Result<DeviceMessage, ProtocolError> {
    let bad = |msg: String| ProtocolError::BadRegistration(msg);
    let registration: Registration =
        serde_json::from_value(raw).map_err(|e| bad(cut(&e.to_string())))?;
    if let Some(name) = &registration.name {
        validate_name(name, NameKind::DisplayName)?;
    }
    check_field_count(registration.fields.len(), rules)?;
    for (i, field) in registration.fields.iter().enumerate() {
        validate_name(&field.name, NameKind::Field)?;
        if registration.fields[..i]
            .iter()
            .any(|f| f.name == field.name)
        {
            return Err(ProtocolError::DuplicateField(quote(&field.name)));
        }
        if let Some(unit) = &field.unit {
            if unit.chars().count() > MAX_UNIT_CHARS || unit.chars().any(char::is_control) {
                return Err(bad(format!(
                    "unit of {}: at most {MAX_UNIT_CHARS} characters, no control characters",
                    quote(&field.name)
                )));
            }
        }
    }
    if registration.commands.len() > MAX_COMMANDS {
        return Err(bad(format!("at most {MAX_COMMANDS} commands")));
    }
    for command in &registration.commands {
        app::model::validate_variable(&command.name)
            .map_err(|e| bad(format!("command {}: {e}", quote(&command.name))))?;
        let finite = |v: Option<f64>| v.is_none_or(f64::is_finite);
        if !finite(command.min)
            || !finite(command.max)
            || command.min.zip(command.max).is_some_and(|(lo, hi)| lo > hi)
        {
            return Err(bad(format!(
                "command {}: min and max must be numbers with min ≤ max",
                quote(&command.name)
            )));
        }
        if command.step.is_some_and(|s| !(s.is_finite() && s > 0.0)) {
            return Err(bad(format!(
                "command {}: step must be a number above 0",
                quote(&command.name)
            )));
        }
        if let Some(unit) = &command.unit {
            if unit.chars().count() > MAX_UNIT_CHARS || unit.chars().any(char::is_control) {
                return Err(bad(format!(
                    "unit of command {}: at most {MAX_UNIT_CHARS} characters, no control characters",
                    quote(&command.name)
                )));
            }
        }
    }
    Ok(DeviceMessage::Register {
        device_id,
        registration,
    })
}

/// The line that carries command `seq` to a device speaking `dialect`:
/// `LED=1,seq=12,dur=500` for CSV and key=value devices, `{"cmd":"LED","value":1,"seq":12,"dur":500}`
/// for JSON devices. Whole numbers are written without a decimal point.
/// The answer to `sync=<n>`: every reading sent before it is stored.
pub fn format_stored(dialect: Dialect, n: u64) -> String {
    match dialect {
        Dialect::Csv | Dialect::KeyValue => format!("stored={n}"),
        Dialect::Json => format!(r#"{{"stored":{n}}}"#),
        Dialect::Framed => format!("|START|STORED={n}|END|"),
    }
}

pub fn format_command(
    dialect: Dialect,
    seq: u64,
    variable: &str,
    value: f64,
    duration_ms: Option<u64>,
) -> String {
    // Rust prints floats without exponents, which is valid JSON too.
    let value = if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        value.to_string()
    };
    // `variable` passed CommandRequest::validate: letters, digits and `_` only, nothing to escape.
    let mut line = match dialect {
        Dialect::Csv | Dialect::KeyValue => format!("{variable}={value},seq={seq}"),
        Dialect::Json => format!(r#"{{"cmd":"{variable}","value":{value},"seq":{seq}"#),
        Dialect::Framed => format!("|START|COMMAND=SET|{variable}={value}|SEQ={seq}"),
    };
    if let Some(ms) = duration_ms {
        line.push_str(&match dialect {
            Dialect::Csv | Dialect::KeyValue => format!(",dur={ms}"),
            Dialect::Json => format!(r#","dur":{ms}"#),
            Dialect::Framed => format!("|DUR={ms}"),
        });
    }
    match dialect {
        Dialect::Json => line.push('}'),
        Dialect::Framed => line.push_str("|END|"),
        Dialect::Csv | Dialect::KeyValue => {}
    }
    line
}

fn push_value(
    values: &mut Vec<FieldValue>,
    field: &str,
    value: f64,
    rules: &ParseRules,
) -> Result<(), ProtocolError> {
    if values.iter().any(|v| &*v.field == field) {
        return Err(ProtocolError::DuplicateField(quote(field)));
    }
    check_field_count(values.len() + 1, rules)?;
    values.push(FieldValue {
        field: field.into(),
        value,
    });
    Ok(())
}

fn check_field_count(count: usize, rules: &ParseRules) -> Result<(), ProtocolError> {
    if count > rules.max_fields {
        return Err(ProtocolError::TooManyFields {
            count,
            max: rules.max_fields,
        });
    }
    Ok(())
}

fn parse_number(field: &str, raw: &str) -> Result<f64, ProtocolError> {
    raw.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| ProtocolError::NotANumber {
            field: quote(field),
            value: quote(raw),
        })
}

/// Checks a field name (also used for the configured `--default-fields`).
pub fn validate_field_name(name: &str) -> Result<(), ProtocolError> {
    validate_name(name, NameKind::Field).map(|_| ())
}

fn validate_name(name: &str, kind: NameKind) -> Result<&str, ProtocolError> {
    if name.is_empty() {
        return Err(ProtocolError::EmptyName(kind));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ProtocolError::NameTooLong(kind));
    }
    if name.chars().any(char::is_control) {
        return Err(ProtocolError::ControlCharacters(kind));
    }
    Ok(name)
}

/// Quotes device input for an error message: escaped (so control and invisible characters
/// show), and cut so that a message stays short whatever the input — escaping can make one
/// character ten, so the cut comes after escaping.
fn quote(raw: &str) -> String {
    const MAX_CHARS: usize = 48;
    let escaped = format!("{raw:?}");
    match escaped.char_indices().nth(MAX_CHARS) {
        Some((at, _)) => format!("{}…\"", &escaped[..at]),
        None => escaped,
    }
}

/// Shortens a message from a library (which may quote input) to a bounded length.
fn cut(message: &str) -> String {
    const MAX_CHARS: usize = 120;
    match message.char_indices().nth(MAX_CHARS) {
        Some((at, _)) => format!("{}…", &message[..at]),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> ParseRules {
        ParseRules {
            csv_fields: ["counter".into(), "temp".into()].into(),
            max_fields: 4,
        }
    }

    fn reading(line: &str) -> ParsedReading {
        match parse_line(line, &rules()) {
            Ok(DeviceMessage::Reading(r)) => r,
            other => panic!("{line:?} should be a reading, got {other:?}"),
        }
    }

    fn fields(r: &ParsedReading) -> Vec<(&str, f64)> {
        r.values.iter().map(|v| (&*v.field, v.value)).collect()
    }

    #[test]
    fn classic_mbed_line() {
        let r = reading("7,42,23.5");
        assert_eq!(r.dialect, Dialect::Csv);
        assert_eq!(r.device_id.as_ref().unwrap().as_str(), "7");
        assert_eq!(fields(&r), [("counter", 42.0), ("temp", 23.5)]);
    }

    #[test]
    fn csv_values_beyond_the_named_list_are_numbered() {
        let r = reading(" 7 , 1, 2 ,3\r");
        assert_eq!(fields(&r), [("counter", 1.0), ("temp", 2.0), ("f3", 3.0)]);
    }

    #[test]
    fn generated_csv_names_skip_registered_ones() {
        let names = |named: &[&str], count| {
            let named: Vec<Name> = named.iter().map(|&n| n.into()).collect();
            let names = csv_names(&named, count);
            names.iter().map(|n| n.to_string()).collect::<Vec<_>>()
        };
        assert_eq!(names(&["f2"], 3), ["f2", "f3", "f4"]);
        assert_eq!(names(&[], 2), ["f1", "f2"]);
        assert_eq!(names(&["a", "b"], 1), ["a"]);
    }

    #[test]
    fn key_value_line() {
        let r = reading("id=7,temp=23.5,hum=40");
        assert_eq!(r.dialect, Dialect::KeyValue);
        assert_eq!(r.device_id.as_ref().unwrap().as_str(), "7");
        assert_eq!(fields(&r), [("temp", 23.5), ("hum", 40.0)]);
        let r = reading("temp=1");
        assert_eq!(r.device_id, None);
    }

    #[test]
    fn json_line() {
        let r = reading(r#"{"id":"7","temp":23.5,"hum":40,"ts":1700000000000}"#);
        assert_eq!(r.dialect, Dialect::Json);
        assert_eq!(r.device_id.as_ref().unwrap().as_str(), "7");
        assert_eq!(
            fields(&r),
            [("temp", 23.5), ("hum", 40.0)],
            "in the order sent; ts is not a field"
        );
        assert_eq!(r.device_ms, Some(1_700_000_000_000));
        let r = reading(r#"{"id":7,"temp":1}"#);
        assert_eq!(r.device_id.as_ref().unwrap().as_str(), "7");
    }

    #[test]
    fn bad_lines_get_clear_errors() {
        let cases: &[(&str, &str)] = &[
            ("", "empty line"),
            ("7", "no values after the device id"),
            ("7,abc", "field \"counter\": \"abc\" is not a finite number"),
            ("7,NaN", "not a finite number"),
            ("7,inf", "not a finite number"),
            (",1", "device id is empty"),
            ("7,1,2,3,4,5", "5 fields, more than the 4 allowed"),
            ("id=7,temp=1,temp=2", "field \"temp\" appears twice"),
            ("id=7,temp", "\"temp\" is not a key=value pair"),
            ("{\"temp\":\"hot\"}", "is not a finite number"),
            ("{nope", "invalid JSON"),
            ("[1,2]", "\"2]\" is not a finite number"),
            ("{\"id\":\"7\"}", "no values after the device id"),
            ("ack=x", "ack must be a command sequence number"),
            ("{\"ack\":-1}", "ack must be a command sequence number"),
            ("{\"ts\":\"now\",\"t\":1}", "\"ts\" must be milliseconds"),
            (
                "{\"register\":{\"nme\":\"x\"}}",
                "invalid registration: unknown field `nme`",
            ),
            (
                "{\"register\":{\"commands\":[{\"name\":\"L=D\"}]}}",
                "invalid registration: command \"L=D\"",
            ),
            (
                "{\"register\":{\"commands\":[{\"name\":\"LED\",\"min\":2,\"max\":1}]}}",
                "min ≤ max",
            ),
            (
                "{\"register\":{\"commands\":[{\"name\":\"DIM\",\"min\":0,\"max\":9,\"step\":0}]}}",
                "step must be a number above 0",
            ),
            (
                "{\"register\":{\"fields\":[{\"name\":\"a\"},{\"name\":\"a\"}]}}",
                "field \"a\" appears twice",
            ),
            (
                "{\"register\":{\"fields\":[{\"name\":\"t\",\"unit\":\"\\u0007\"}]}}",
                "unit of \"t\"",
            ),
        ];
        for (line, expected) in cases {
            let err = parse_line(line, &rules()).unwrap_err().to_string();
            assert!(
                err.contains(expected),
                "{line:?}: {err:?} should contain {expected:?}"
            );
        }
    }

    #[test]
    fn syncs_in_both_dialects_and_their_answers() {
        assert_eq!(
            parse_line("sync=3", &rules()),
            Ok(DeviceMessage::Sync {
                device_id: None,
                n: 3,
                dialect: Dialect::KeyValue
            })
        );
        let msg = parse_line(r#"{"id":"7","sync":4}"#, &rules()).unwrap();
        assert!(matches!(
            msg,
            DeviceMessage::Sync {
                n: 4,
                dialect: Dialect::Json,
                ..
            }
        ));
        assert_eq!(msg.device_id().map(DeviceId::as_str), Some("7"));
        assert!(matches!(
            parse_line("sync=-1", &rules()),
            Err(ProtocolError::BadSync(_))
        ));
        assert_eq!(format_stored(Dialect::Csv, 3), "stored=3");
        assert_eq!(format_stored(Dialect::Json, 3), r#"{"stored":3}"#);
        assert_eq!(format_stored(Dialect::Framed, 3), "|START|STORED=3|END|");
    }

    #[test]
    fn acks_in_both_dialects() {
        assert_eq!(
            parse_line("ack=12", &rules()),
            Ok(DeviceMessage::Ack {
                device_id: None,
                seq: 12,
                dialect: Dialect::KeyValue
            })
        );
        let msg = parse_line(r#"{"id":"7","ack":12}"#, &rules()).unwrap();
        assert!(matches!(
            msg,
            DeviceMessage::Ack {
                seq: 12,
                dialect: Dialect::Json,
                ..
            }
        ));
        assert_eq!(msg.device_id().map(DeviceId::as_str), Some("7"));
    }

    #[test]
    fn registration() {
        let line = r#"{"id":"7","register":{"name":"Kitchen","fields":[{"name":"counter"},{"name":"temp","unit":"°C"}],"commands":[{"name":"LED","min":0,"max":1}]}}"#;
        let DeviceMessage::Register {
            device_id,
            registration,
        } = parse_line(line, &rules()).unwrap()
        else {
            panic!("a registration")
        };
        assert_eq!(device_id.unwrap().as_str(), "7");
        assert_eq!(registration.name.as_deref(), Some("Kitchen"));
        assert_eq!(registration.fields[1].unit.as_deref(), Some("°C"));
        assert_eq!(registration.commands[0].max, Some(1.0));
    }

    #[test]
    fn commands_go_out_in_the_device_dialect() {
        assert_eq!(
            format_command(Dialect::Csv, 12, "LED", 1.0, None),
            "LED=1,seq=12"
        );
        assert_eq!(
            format_command(Dialect::KeyValue, 3, "PWM", 0.25, Some(500)),
            "PWM=0.25,seq=3,dur=500"
        );
        assert_eq!(
            format_command(Dialect::Json, 12, "LED", 1.0, None),
            r#"{"cmd":"LED","value":1,"seq":12}"#
        );
        assert_eq!(
            format_command(Dialect::Framed, 12, "LED", 1.0, Some(500)),
            "|START|COMMAND=SET|LED=1|SEQ=12|DUR=500|END|"
        );
        let json = format_command(Dialect::Json, 4, "T", -1e-7, Some(9));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            (v["value"].as_f64(), v["dur"].as_u64()),
            (Some(-1e-7), Some(9))
        );
    }

    #[test]
    fn ids_are_bounded_and_free_of_control_characters() {
        let long = "x".repeat(MAX_NAME_CHARS + 1);
        assert_eq!(
            DeviceId::parse(&long),
            Err(ProtocolError::NameTooLong(NameKind::DeviceId))
        );
        assert!(
            DeviceId::parse(&"é".repeat(MAX_NAME_CHARS)).is_ok(),
            "the limit counts characters, not bytes"
        );
        assert_eq!(
            DeviceId::parse("a\u{7}b"),
            Err(ProtocolError::ControlCharacters(NameKind::DeviceId))
        );
        assert_eq!(
            parse_line("id=7,te\u{1b}mp=1", &rules()).unwrap_err(),
            ProtocolError::ControlCharacters(NameKind::Field)
        );
        // Markup is not refused here: it is text, and is escaped wherever it is shown.
        assert!(DeviceId::parse("<img src=x onerror=alert(1)>").is_ok());
    }

    #[test]
    fn quoted_input_in_errors_is_truncated() {
        let huge = format!("7,{}", "9x".repeat(10_000));
        let err = parse_line(&huge, &rules()).unwrap_err().to_string();
        assert!(err.len() < 200, "{}", err.len());
    }
}
