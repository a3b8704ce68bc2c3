//! Pure parsing of what devices send: one text line in, one reading (or a clear error) out.
//!
//! Three dialects, told apart by the line itself:
//! - positional CSV, `7,42,23.5`: the device id, then values named by the configured list;
//! - `key=value` pairs, `id=7,temp=23.5,hum=40` (the id may instead come from the connection);
//! - a JSON object, `{"id":"7","temp":23.5}`.
//!
//! Everything here is hostile input: lengths are bounded, numbers must be finite, and names may
//! not hold control characters. No I/O happens here, so every case is a unit test.

use app::model::FieldValue;
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
}

/// A line that parsed as a reading.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedReading {
    pub dialect: Dialect,
    /// Absent when a `key=value` or JSON line leaves it to the connection.
    pub device_id: Option<DeviceId>,
    pub values: Vec<FieldValue>,
}

/// What the parser needs to know besides the line.
#[derive(Debug, Clone)]
pub struct ParseRules {
    /// Names for positional CSV values, in order.
    pub csv_fields: Vec<String>,
    pub max_fields: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    DeviceId,
    Field,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::DeviceId => "device id",
            NameKind::Field => "field name",
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
    #[error("field {field:?}: {value:?} is not a finite number")]
    NotANumber { field: String, value: String },
    #[error("{count} fields, more than the {max} allowed")]
    TooManyFields { count: usize, max: usize },
    #[error("field {0:?} appears twice")]
    DuplicateField(String),
    #[error("{0:?} is not a key=value pair")]
    NotAPair(String),
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("a JSON reading must be an object")]
    JsonNotAnObject,
}

/// Parses one line (without its line ending).
pub fn parse_line(line: &str, rules: &ParseRules) -> Result<ParsedReading, ProtocolError> {
    let line = line.trim();
    if line.is_empty() {
        return Err(ProtocolError::Empty);
    }
    if line.starts_with('{') {
        parse_json(line, rules)
    } else if line.contains('=') {
        parse_key_value(line, rules)
    } else {
        parse_csv(line, rules)
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
        .enumerate()
        .map(|(i, value)| {
            let field = rules
                .csv_fields
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("f{}", i + 1));
            parse_number(&field, value).map(|value| FieldValue { field, value })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ParsedReading {
        dialect: Dialect::Csv,
        device_id: Some(id),
        values,
    })
}

fn parse_key_value(line: &str, rules: &ParseRules) -> Result<ParsedReading, ProtocolError> {
    let mut device_id = None;
    let mut values: Vec<FieldValue> = Vec::new();
    for pair in line.split(',') {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| ProtocolError::NotAPair(truncate(pair)))?;
        let key = key.trim();
        if key.eq_ignore_ascii_case("id") {
            device_id = Some(DeviceId::parse(value)?);
            continue;
        }
        let field = validate_name(key, NameKind::Field)?;
        push_value(&mut values, field, parse_number(field, value)?, rules)?;
    }
    if values.is_empty() {
        return Err(ProtocolError::NoValues);
    }
    Ok(ParsedReading {
        dialect: Dialect::KeyValue,
        device_id,
        values,
    })
}

fn parse_json(line: &str, rules: &ParseRules) -> Result<ParsedReading, ProtocolError> {
    let parsed: serde_json::Value =
        serde_json::from_str(line).map_err(|e| ProtocolError::Json(e.to_string()))?;
    let serde_json::Value::Object(object) = parsed else {
        return Err(ProtocolError::JsonNotAnObject);
    };
    let mut device_id = None;
    let mut values: Vec<FieldValue> = Vec::new();
    for (key, value) in &object {
        if key == "id" {
            let raw = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                other => {
                    return Err(ProtocolError::NotANumber {
                        field: "id".into(),
                        value: truncate(&other.to_string()),
                    })
                }
            };
            device_id = Some(DeviceId::parse(&raw)?);
            continue;
        }
        let field = validate_name(key, NameKind::Field)?;
        let number =
            value
                .as_f64()
                .filter(|v| v.is_finite())
                .ok_or_else(|| ProtocolError::NotANumber {
                    field: field.to_string(),
                    value: truncate(&value.to_string()),
                })?;
        push_value(&mut values, field, number, rules)?;
    }
    if values.is_empty() {
        return Err(ProtocolError::NoValues);
    }
    Ok(ParsedReading {
        dialect: Dialect::Json,
        device_id,
        values,
    })
}

fn push_value(
    values: &mut Vec<FieldValue>,
    field: &str,
    value: f64,
    rules: &ParseRules,
) -> Result<(), ProtocolError> {
    if values.iter().any(|v| v.field == field) {
        return Err(ProtocolError::DuplicateField(field.to_string()));
    }
    check_field_count(values.len() + 1, rules)?;
    values.push(FieldValue {
        field: field.to_string(),
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
            field: field.to_string(),
            value: truncate(raw),
        })
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

/// Error messages quote device input; keep the quote short.
fn truncate(raw: &str) -> String {
    const MAX: usize = 40;
    match raw.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &raw[..cut]),
        None => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> ParseRules {
        ParseRules {
            csv_fields: vec!["counter".into(), "temp".into()],
            max_fields: 4,
        }
    }

    fn fields(r: &ParsedReading) -> Vec<(&str, f64)> {
        r.values
            .iter()
            .map(|v| (v.field.as_str(), v.value))
            .collect()
    }

    #[test]
    fn classic_mbed_line() {
        let r = parse_line("7,42,23.5", &rules()).unwrap();
        assert_eq!(r.dialect, Dialect::Csv);
        assert_eq!(r.device_id.as_ref().unwrap().as_str(), "7");
        assert_eq!(fields(&r), [("counter", 42.0), ("temp", 23.5)]);
    }

    #[test]
    fn csv_values_beyond_the_named_list_are_numbered() {
        let r = parse_line(" 7 , 1, 2 ,3\r", &rules()).unwrap();
        assert_eq!(fields(&r), [("counter", 1.0), ("temp", 2.0), ("f3", 3.0)]);
    }

    #[test]
    fn key_value_line() {
        let r = parse_line("id=7,temp=23.5,hum=40", &rules()).unwrap();
        assert_eq!(r.dialect, Dialect::KeyValue);
        assert_eq!(r.device_id.as_ref().unwrap().as_str(), "7");
        assert_eq!(fields(&r), [("temp", 23.5), ("hum", 40.0)]);
        let r = parse_line("temp=1", &rules()).unwrap();
        assert_eq!(r.device_id, None);
    }

    #[test]
    fn json_line() {
        let r = parse_line(r#"{"id":"7","temp":23.5,"hum":40}"#, &rules()).unwrap();
        assert_eq!(r.dialect, Dialect::Json);
        assert_eq!(r.device_id.as_ref().unwrap().as_str(), "7");
        assert_eq!(fields(&r).len(), 2);
        let r = parse_line(r#"{"id":7,"temp":1}"#, &rules()).unwrap();
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
