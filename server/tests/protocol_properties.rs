//! Property tests for the device line parser, [`server::protocol::parse_line`], and for
//! [`server::protocol::format_command`].
//!
//! Devices are hostile input: whatever a line holds, the parser must not panic, must accept only
//! readings that obey the protocol's rules, and must explain refusals in a short message. Lines
//! built to be valid must come back exactly as they were built.
//!
//! Failures are not written to a `proptest-regressions` file; a failing input found here is
//! pinned as a plain `#[test]` at the end of this file instead.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use server::protocol::{
    format_command, parse_line, DeviceId, DeviceMessage, Dialect, ParseRules, ParsedReading,
    MAX_NAME_CHARS,
};

/// Longest error message (in characters) the parser may produce, whatever the input length.
const MAX_ERROR_CHARS: usize = 300;
/// What a registration may declare (see `parse_registration`).
const MAX_UNIT_CHARS: usize = 16;
const MAX_COMMANDS: usize = 32;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Pieces of the protocol's own alphabet, so that random concatenations are often nearly valid.
#[rustfmt::skip]
const TOKENS: &[&str] = &[
    "0", "1", "7", "9", "42", "23.5", "-3", "1e3", "2E-7", ".5", "5.", "+1", "-0", ",", ",", ",",
    "=", "=", "{", "}", "\"", "\"", "[", "]", ":", ":", ".", "e", "-", " ", "\t", "\r", "\n", "\0",
    "\u{7f}", "\u{85}", "\u{a0}", "\u{200b}", "\u{e0001}", "é", "°C", "\\", "\\u0000", "\\ud800",
    "\\n", "id", "ID", "ack", "ts", "register", "name", "fields", "commands", "unit", "min", "max",
    "temp", "counter", "f3", "null", "true", "nan", "NaN", "inf", "infinity", "1e308", "1e309",
    "1e-400", "18446744073709551615", "18446744073709551616", "\"id\":", "\"ack\":", "\"ts\":",
    "\"register\":", "{\"name\":", "\"fields\":[", "\"commands\":[",
];

fn token_line() -> impl Strategy<Value = String> {
    vec(select(TOKENS), 0..48).prop_map(|tokens| tokens.concat())
}

/// Any line at all: arbitrary unicode, long, control-heavy, the protocol's own alphabet, and
/// valid lines with a few random edits.
fn any_line() -> BoxedStrategy<String> {
    let control = select(vec![
        '\0', '\u{1}', '\u{7}', '\t', '\n', '\r', '\u{1b}', '\u{7f}', '\u{85}', '\u{9f}', 'a', '7',
        ',', '=', '{', '"', ' ',
    ]);
    prop_oneof![
        2 => any::<String>(),
        2 => vec(any::<char>(), 0..64).prop_map(String::from_iter),
        1 => vec(any::<char>(), 0..4096).prop_map(String::from_iter),
        1 => vec(control, 0..128).prop_map(String::from_iter),
        1 => "[0-9,=a-z{}\":. -]{0,6000}",
        4 => token_line(),
        4 => mutated(valid_line()),
        2 => hostile_line(),
        2 => quoted_value_line(),
    ]
    .boxed()
}

/// A valid start, then a long or unprintable name or value where errors quote the input.
fn hostile_line() -> impl Strategy<Value = String> {
    let prefixes = select(vec![
        "",
        "7,",
        "7,1,",
        "id=",
        "id=7,",
        "ack=",
        "{\"id\":\"",
        "{\"ack\":\"",
        "{\"t\":\"",
        "{\"",
        "{\"register\":{\"name\":\"",
        "{\"register\":{\"fields\":[{\"name\":\"",
        "{\"register\":{\"commands\":[{\"name\":\"",
        "{\"register\":{\"fields\":[{\"name\":\"t\",\"unit\":\"",
    ]);
    let suffixes = select(vec![
        "",
        "=x",
        "=1",
        "=1,",
        ",",
        "\"",
        "\":\"x\"}",
        "\":1}",
        "\"}}",
        "\"}]}}",
        "\"},{\"name\":\"x\"}]}}",
        "\",\"min\":2,\"max\":1}]}}",
    ]);
    let body = prop_oneof![
        vec(name_char(), 0..=80).prop_map(String::from_iter),
        vec(any::<char>(), 0..=200).prop_map(String::from_iter),
        vec(select(QUOTED_LONG), 0..=80).prop_map(String::from_iter),
    ];
    (prefixes, body.clone(), suffixes, body)
        .prop_map(|(prefix, body, suffix, tail)| format!("{prefix}{body}{suffix}{tail}"))
}

/// A refused value made of characters that `{:?}` writes long, where errors quote it.
fn quoted_value_line() -> impl Strategy<Value = String> {
    let prefixes = select(vec![
        "7,",
        "7,1,",
        "t=",
        "id=7,t=",
        "ack=",
        "{\"t\":\"",
        "{\"ack\":\"",
    ]);
    (prefixes, vec(select(QUOTED_LONG), 32..=80))
        .prop_map(|(prefix, value)| format!("{prefix}{}", String::from_iter(value)))
}

/// Applies a few random edits (delete, insert a token, replace with a token) to lines.
fn mutated(lines: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    (lines, vec((0..3u8, any::<Index>(), select(TOKENS)), 1..4)).prop_map(|(line, edits)| {
        let mut chars: Vec<char> = line.chars().collect();
        for (op, at, token) in edits {
            let at = at.index(chars.len() + 1);
            match op {
                0 if at < chars.len() => {
                    chars.remove(at);
                }
                1 => {
                    chars.splice(at..at, token.chars());
                }
                _ if at < chars.len() => {
                    chars.splice(at..=at, token.chars());
                }
                _ => chars.extend(token.chars()),
            }
        }
        chars.into_iter().collect()
    })
}

fn valid_line() -> BoxedStrategy<String> {
    prop_oneof![
        csv_case().prop_map(|c| c.line),
        key_value_case().prop_map(|c| c.line),
        json_case(finite_f64()).prop_map(|c| c.line),
        ack_case().prop_map(|c| c.0),
        registration_case().prop_map(|c| c.line),
    ]
    .boxed()
}

/// A valid name for every dialect: 1–64 characters, no control characters, no surrounding
/// white space, no `,` or `=` (the separators of CSV and key=value lines), not starting with `{`
/// (which makes a line JSON). Short ASCII names, `f<n>` (the names of unnamed CSV values) and
/// arbitrary unicode.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z][a-z0-9_]{0,11}",
        1 => "f[1-9][0-9]?",
        2 => vec(name_char(), 1..=MAX_NAME_CHARS).prop_map(String::from_iter),
    ]
    .prop_filter(
        "a separator-free name without surrounding white space",
        |s| !s.is_empty() && s.trim() == s && !s.contains([',', '=']) && !s.starts_with('{'),
    )
}

/// Any character but a control character (those become `·`), often one that `{:?}` escapes.
fn name_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => any::<char>().prop_map(|c| if c.is_control() { '·' } else { c }),
        1 => select(QUOTED_LONG),
    ]
}

/// Characters that `{:?}` (how errors quote input) writes as several: `\u{e0001}`, `\"`…
const QUOTED_LONG: &[char] = &[
    '\u{200b}',
    '\u{feff}',
    '\u{e0001}',
    '\u{f0000}',
    '\u{10ffff}',
    '\u{301}',
    '"',
    '\\',
];

/// `size` names, each kept at most once (in order), all passing `allowed`.
fn unique_names(
    size: impl Into<proptest::collection::SizeRange>,
    allowed: fn(&str) -> bool,
) -> impl Strategy<Value = Vec<String>> {
    vec(
        name().prop_filter("reserved name", move |n| allowed(n)),
        size,
    )
    .prop_map(|names| {
        let mut seen = BTreeSet::new();
        names
            .into_iter()
            .filter(|n| seen.insert(n.clone()))
            .collect()
    })
}

fn any_name(_: &str) -> bool {
    true
}

/// Rules as a server would use them: configured or registered (hence unique, valid) CSV names,
/// possibly including `f<n>`, which a device may register.
fn rules() -> impl Strategy<Value = ParseRules> {
    (unique_names(0..=4, any_name), 1usize..=8).prop_map(|(names, max_fields)| ParseRules {
        csv_fields: names.into_iter().map(Into::into).collect(),
        max_fields,
    })
}

/// Any finite f64: every class (normal, subnormal, zero, both signs) and sensor-like decimals.
fn finite_f64() -> BoxedStrategy<f64> {
    use proptest::num::f64 as class;
    prop_oneof![
        class::POSITIVE | class::NEGATIVE | class::NORMAL | class::SUBNORMAL | class::ZERO,
        sensor_f64(),
    ]
    .boxed()
}

/// Values like devices send: at most 9 significant digits and 4 decimals.
fn sensor_f64() -> BoxedStrategy<f64> {
    (-999_999_999i64..=999_999_999, 0i32..=4)
        .prop_map(|(m, k)| m as f64 / 10f64.powi(k))
        .boxed()
}

/// A number and how a device may write it (`{}` or `{:e}`).
fn number(values: BoxedStrategy<f64>) -> impl Strategy<Value = (f64, String)> {
    (values, any::<bool>()).prop_map(|(v, exponent)| {
        let text = if exponent {
            format!("{v:e}")
        } else {
            format!("{v}")
        };
        (v, text)
    })
}

/// Optional white space around a value, which the parser trims.
fn padded(text: &str, pad: bool) -> String {
    if pad {
        format!(" {text} ")
    } else {
        text.to_string()
    }
}

#[derive(Debug, Clone)]
struct CsvCase {
    rules: ParseRules,
    id: String,
    values: Vec<f64>,
    line: String,
}

fn csv_case() -> impl Strategy<Value = CsvCase> {
    rules()
        .prop_flat_map(|rules| {
            let max = rules.max_fields;
            (
                Just(rules),
                name(),
                vec(number(finite_f64()), 1..=max),
                any::<bool>(),
            )
        })
        .prop_map(|(rules, id, numbers, pad)| {
            let texts: Vec<String> = numbers.iter().map(|(_, t)| padded(t, pad)).collect();
            CsvCase {
                line: format!("{},{}", padded(&id, pad), texts.join(",")),
                values: numbers.into_iter().map(|(v, _)| v).collect(),
                rules,
                id,
            }
        })
}

#[derive(Debug, Clone)]
struct KeyValueCase {
    rules: ParseRules,
    id: Option<String>,
    values: Vec<(String, f64)>,
    line: String,
}

fn not_id_or_ack(name: &str) -> bool {
    !name.eq_ignore_ascii_case("id") && !name.eq_ignore_ascii_case("ack")
}

fn key_value_case() -> impl Strategy<Value = KeyValueCase> {
    rules()
        .prop_flat_map(|rules| {
            let max = rules.max_fields;
            (
                Just(rules),
                proptest::option::of(name()),
                unique_names(1..=max, not_id_or_ack),
                vec(number(finite_f64()), max),
                any::<Index>(),
                any::<bool>(),
            )
        })
        .prop_map(|(rules, id, names, numbers, id_at, pad)| {
            let mut pairs: Vec<String> = names
                .iter()
                .zip(&numbers)
                .map(|(n, (_, text))| format!("{}={}", padded(n, pad), padded(text, pad)))
                .collect();
            if let Some(id) = &id {
                pairs.insert(id_at.index(pairs.len() + 1), format!("id={id}"));
            }
            KeyValueCase {
                line: pairs.join(","),
                values: names
                    .into_iter()
                    .zip(numbers.into_iter().map(|(v, _)| v))
                    .collect(),
                rules,
                id,
            }
        })
}

#[derive(Debug, Clone)]
struct JsonCase {
    rules: ParseRules,
    id: Option<String>,
    ts: Option<i64>,
    values: BTreeMap<String, f64>,
    line: String,
}

fn not_reserved_json_key(name: &str) -> bool {
    !["id", "ts", "ack", "register"].contains(&name)
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn json_case(values: BoxedStrategy<f64>) -> impl Strategy<Value = JsonCase> {
    rules()
        .prop_flat_map(move |rules| {
            let max = rules.max_fields;
            let id = prop_oneof![
                name().prop_map(|s| (s.clone(), json_string(&s))),
                any::<i64>().prop_map(|n| (n.to_string(), n.to_string())),
            ];
            (
                Just(rules),
                proptest::option::of(id),
                proptest::option::of(0..=i64::MAX),
                unique_names(1..=max, not_reserved_json_key),
                vec(number(values.clone()), max),
                any::<Index>(),
            )
        })
        .prop_map(|(rules, id, ts, names, numbers, extra_at)| {
            let mut members: Vec<String> = names
                .iter()
                .zip(&numbers)
                .map(|(n, (_, text))| format!("{}:{text}", json_string(n)))
                .collect();
            let mut extras = Vec::new();
            if let Some((_, id_json)) = &id {
                extras.push(format!("\"id\":{id_json}"));
            }
            if let Some(ts) = ts {
                extras.push(format!("\"ts\":{ts}"));
            }
            for extra in extras {
                members.insert(extra_at.index(members.len() + 1), extra);
            }
            JsonCase {
                line: format!("{{{}}}", members.join(",")),
                values: names
                    .into_iter()
                    .zip(numbers.into_iter().map(|(v, _)| v))
                    .collect(),
                rules,
                id: id.map(|(id, _)| id),
                ts,
            }
        })
}

/// An ack line, the device id it names and the sequence number.
fn ack_case() -> impl Strategy<Value = (String, Option<String>, u64, Dialect)> {
    (proptest::option::of(name()), any::<u64>(), any::<bool>()).prop_map(|(id, seq, json)| {
        let line = match (&id, json) {
            (None, false) => format!("ack={seq}"),
            (Some(id), false) => format!("id={id},ack={seq}"),
            (None, true) => format!("{{\"ack\":{seq}}}"),
            (Some(id), true) => format!("{{\"id\":{},\"ack\":{seq}}}", json_string(id)),
        };
        let dialect = if json {
            Dialect::Json
        } else {
            Dialect::KeyValue
        };
        (line, id, seq, dialect)
    })
}

#[derive(Debug, Clone)]
struct RegistrationCase {
    rules: ParseRules,
    fields: Vec<String>,
    line: String,
}

fn registration_case() -> impl Strategy<Value = RegistrationCase> {
    rules()
        .prop_flat_map(|rules| {
            let max = rules.max_fields;
            (Just(rules), unique_names(1..=max, any_name))
        })
        .prop_map(|(rules, fields)| {
            let specs: Vec<String> = fields
                .iter()
                .map(|n| format!("{{\"name\":{}}}", json_string(n)))
                .collect();
            RegistrationCase {
                line: format!(
                    "{{\"register\":{{\"name\":\"Kitchen\",\"fields\":[{}],\"commands\":[{{\"name\":\"LED\",\"min\":0,\"max\":1}}]}}}}",
                    specs.join(",")
                ),
                rules,
                fields,
            }
        })
}

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

/// Device ids and field names: 1–64 characters, no control characters.
fn check_name(what: &str, name: &str) -> Result<(), TestCaseError> {
    let chars = name.chars().count();
    prop_assert!(
        (1..=MAX_NAME_CHARS).contains(&chars),
        "{} {:?} has {} characters",
        what,
        name,
        chars
    );
    prop_assert!(
        !name.chars().any(char::is_control),
        "{} {:?} has control characters",
        what,
        name
    );
    Ok(())
}

fn check_device_id(id: &DeviceId) -> Result<(), TestCaseError> {
    check_name("device id", id.as_str())?;
    prop_assert_eq!(id.as_str().trim(), id.as_str(), "device id is not trimmed");
    Ok(())
}

/// Everything an accepted message must obey, except unique field names (checked apart).
fn check_message(msg: &DeviceMessage, rules: &ParseRules) -> Result<(), TestCaseError> {
    if let Some(id) = msg.device_id() {
        check_device_id(id)?;
    }
    match msg {
        DeviceMessage::Reading(r) => {
            prop_assert!(
                (1..=rules.max_fields).contains(&r.values.len()),
                "{} values, max {}",
                r.values.len(),
                rules.max_fields
            );
            for v in &r.values {
                check_name("field name", &v.field)?;
                prop_assert!(v.value.is_finite(), "{:?} is not finite", v);
            }
            if let Some(ms) = r.device_ms {
                prop_assert!(ms >= 0, "negative device time {}", ms);
            }
        }
        DeviceMessage::Register { registration, .. } => {
            if let Some(name) = &registration.name {
                check_name("display name", name)?;
            }
            prop_assert!(registration.fields.len() <= rules.max_fields);
            for field in &registration.fields {
                check_name("registered field name", &field.name)?;
                if let Some(unit) = &field.unit {
                    prop_assert!(unit.chars().count() <= MAX_UNIT_CHARS);
                    prop_assert!(!unit.chars().any(char::is_control));
                }
            }
            prop_assert!(registration.commands.len() <= MAX_COMMANDS);
            for command in &registration.commands {
                let n = &command.name;
                prop_assert!(
                    (1..=32).contains(&n.len())
                        && n.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "command name {:?}",
                    n
                );
                prop_assert!(command.min.is_none_or(f64::is_finite));
                prop_assert!(command.max.is_none_or(f64::is_finite));
                if let (Some(lo), Some(hi)) = (command.min, command.max) {
                    prop_assert!(lo <= hi);
                }
            }
        }
        DeviceMessage::Ack { .. } | DeviceMessage::Sync { .. } => {}
    }
    Ok(())
}

fn check_unique_fields(msg: &DeviceMessage) -> Result<(), TestCaseError> {
    let names: Vec<&str> = match msg {
        DeviceMessage::Reading(r) => r.values.iter().map(|v| &*v.field).collect(),
        DeviceMessage::Register { registration, .. } => registration
            .fields
            .iter()
            .map(|f| f.name.as_str())
            .collect(),
        DeviceMessage::Ack { .. } | DeviceMessage::Sync { .. } => return Ok(()),
    };
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    prop_assert_eq!(
        unique.len(),
        names.len(),
        "duplicate field names in {:?}",
        names
    );
    Ok(())
}

fn reading(line: &str, rules: &ParseRules) -> Result<ParsedReading, TestCaseError> {
    match parse_line(line, rules) {
        Ok(DeviceMessage::Reading(r)) => Ok(r),
        other => Err(TestCaseError::fail(format!(
            "{line:?} should be a reading, got {other:?}"
        ))),
    }
}

/// Compares readings exactly (`==`: 0.0 and -0.0 are the same reading).
fn same(a: f64, b: f64) -> bool {
    a == b
}

/// The value text of a JSON command line, `…"value":<text>,…`.
fn json_value_text(line: &str) -> &str {
    let rest = line.split_once("\"value\":").unwrap().1;
    rest.split([',', '}']).next().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// Whatever the line, parsing returns (no panic, no hang).
    #[test]
    fn parse_line_never_panics(line in any_line(), rules in rules()) {
        let _ = parse_line(&line, &rules);
        let _ = DeviceId::parse(&line);
    }

    /// What the parser accepts obeys the protocol: 1..=max_fields finite values, names of 1–64
    /// characters without control characters, valid ids and registrations.
    #[test]
    fn accepted_messages_are_valid(line in any_line(), rules in rules()) {
        if let Ok(msg) = parse_line(&line, &rules) {
            check_message(&msg, &rules)?;
        }
        if let Ok(id) = DeviceId::parse(&line) {
            check_device_id(&id)?;
        }
    }

    /// No accepted reading or registration names a field twice.
    #[test]
    fn accepted_messages_have_unique_field_names(line in any_line(), rules in rules()) {
        if let Ok(msg) = parse_line(&line, &rules) {
            check_unique_fields(&msg)?;
        }
    }

    /// Errors quote the input, but briefly, however long the line.
    #[test]
    fn error_messages_are_short(line in any_line(), rules in rules()) {
        if let Err(err) = parse_line(&line, &rules) {
            let text = err.to_string();
            prop_assert!(
                text.chars().count() < MAX_ERROR_CHARS,
                "{} characters: {}",
                text.chars().count(),
                text
            );
        }
        if let Err(err) = DeviceId::parse(&line) {
            prop_assert!(err.to_string().chars().count() < MAX_ERROR_CHARS);
        }
    }

    /// `id,v1,…,vk` gives exactly those values in that order, named by the rules' CSV names and
    /// then `f<n>` (skipping any the rules already use).
    #[test]
    fn csv_readings_round_trip(case in csv_case()) {
        let r = reading(&case.line, &case.rules)?;
        prop_assert_eq!(r.dialect, Dialect::Csv);
        prop_assert_eq!(r.device_id.as_ref().map(DeviceId::as_str), Some(case.id.as_str()));
        prop_assert_eq!(r.device_ms, None);
        // The configured names first; then `f<n>` names, rising, never one the list uses.
        let names: Vec<String> = r.values.iter().map(|v| v.field.to_string()).collect();
        let configured: Vec<String> = case.rules.csv_fields.iter().map(|f| f.to_string()).collect();
        let named = configured.len().min(names.len());
        prop_assert_eq!(&names[..named], &configured[..named]);
        let mut last = 0u64;
        for generated in &names[named..] {
            let n: u64 = generated.strip_prefix('f').and_then(|d| d.parse().ok())
                .ok_or_else(|| TestCaseError::fail(format!("generated name {generated:?}")))?;
            prop_assert!(n > last && n as usize > named, "{:?}", names);
            prop_assert!(!configured.contains(generated), "{:?} reuses a configured name", generated);
            last = n;
        }
        let values: Vec<f64> = r.values.iter().map(|v| v.value).collect();
        prop_assert_eq!(values.len(), case.values.len());
        for (got, sent) in values.iter().zip(&case.values) {
            prop_assert!(same(*got, *sent), "sent {:e}, got {:e}", sent, got);
        }
    }

    /// `id=…,name=value,…` gives exactly those names and values, in order.
    #[test]
    fn key_value_readings_round_trip(case in key_value_case()) {
        let r = reading(&case.line, &case.rules)?;
        prop_assert_eq!(r.dialect, Dialect::KeyValue);
        prop_assert_eq!(r.device_id.as_ref().map(DeviceId::as_str), case.id.as_deref());
        prop_assert_eq!(r.values.len(), case.values.len());
        for (got, (name, value)) in r.values.iter().zip(&case.values) {
            prop_assert_eq!(&*got.field, name.as_str());
            prop_assert!(same(got.value, *value), "{}: sent {:e}, got {:e}", name, value, got.value);
        }
    }

    /// JSON readings with values as devices send them give exactly those names and values (the
    /// order of JSON members is not kept, so they are compared as maps), id and timestamp.
    #[test]
    fn json_readings_round_trip(case in json_case(sensor_f64())) {
        check_json_case(&case)?;
    }

    /// The same with any finite f64, written in Rust's shortest round-trip form: a JSON reading
    /// must be as exact as a CSV one.
    #[test]
    fn json_readings_round_trip_any_finite_value(case in json_case(finite_f64())) {
        check_json_case(&case)?;
    }

    /// Acks in both dialects give the id and sequence number back.
    #[test]
    fn acks_round_trip((line, id, seq, dialect) in ack_case(), rules in rules()) {
        let msg = parse_line(&line, &rules);
        prop_assert_eq!(
            msg,
            Ok(DeviceMessage::Ack { device_id: id.map(|id| DeviceId::parse(&id).unwrap()), seq, dialect })
        );
    }

    /// A device registers its field names (they become its CSV names, as in `devices::session`),
    /// then sends CSV lines: the readings never name a field twice.
    #[test]
    fn registered_csv_names_stay_unique(
        case in registration_case(),
        values in vec(sensor_f64(), 1..=8),
    ) {
        let msg = parse_line(&case.line, &case.rules);
        let Ok(DeviceMessage::Register { registration, .. }) = msg else {
            return Err(TestCaseError::fail(format!("{:?} should register, got {msg:?}", case.line)));
        };
        let names: Vec<String> = registration.fields.iter().map(|f| f.name.clone()).collect();
        prop_assert_eq!(&names, &case.fields);
        let rules = ParseRules {
            csv_fields: names.into_iter().map(Into::into).collect(),
            max_fields: case.rules.max_fields,
        };
        let values = &values[..values.len().min(rules.max_fields)];
        let texts: Vec<String> = values.iter().map(f64::to_string).collect();
        let msg = parse_line(&format!("7,{}", texts.join(",")), &rules).unwrap();
        check_message(&msg, &rules)?;
        check_unique_fields(&msg)?;
    }

    /// Commands for valid variables and finite values: one line, and for JSON devices valid
    /// JSON carrying exactly the command; for the others `variable=value,seq=…[,dur=…]`.
    #[test]
    fn commands_are_single_well_formed_lines(
        dialect in select(vec![Dialect::Csv, Dialect::KeyValue, Dialect::Json, Dialect::Framed]),
        seq in any::<u64>(),
        variable in "[A-Za-z_][A-Za-z0-9_]{0,31}",
        value in finite_f64(),
        duration in proptest::option::of(any::<u64>()),
    ) {
        let line = format_command(dialect, seq, &variable, value, duration);
        prop_assert!(!line.contains(['\n', '\r']), "{:?}", line);
        match dialect {
            Dialect::Json => {
                let json: serde_json::Value = serde_json::from_str(&line)
                    .map_err(|e| TestCaseError::fail(format!("{line:?}: {e}")))?;
                let object = json.as_object().unwrap();
                let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
                keys.sort_unstable();
                let mut expected = vec!["cmd", "seq", "value"];
                if duration.is_some() {
                    expected.push("dur");
                    expected.sort_unstable();
                }
                prop_assert_eq!(keys, expected);
                prop_assert_eq!(json["cmd"].as_str(), Some(variable.as_str()));
                prop_assert_eq!(json["seq"].as_u64(), Some(seq));
                prop_assert_eq!(json["dur"].as_u64(), duration);
                // The text is exact (Rust's shortest round-trip form or an integer)...
                let text = json_value_text(&line);
                prop_assert!(same(text.parse::<f64>().unwrap(), value), "{} for {:e}", text, value);
                // ...and a JSON parser reads it back (serde_json's default float parsing may be
                // one unit in the last place off, see `serde_json`'s `float_roundtrip` feature).
                let parsed = json["value"].as_f64().unwrap();
                let ulps = (parsed.to_bits() as i64).wrapping_sub(value.to_bits() as i64).unsigned_abs();
                prop_assert!(same(parsed, value) || ulps <= 1, "{} read back as {:e}", text, parsed);
            }
            Dialect::Csv | Dialect::KeyValue => {
                let mut parts = line.split(',');
                let (name, text) = parts.next().unwrap().split_once('=').unwrap();
                prop_assert_eq!(name, variable.as_str());
                prop_assert!(same(text.parse::<f64>().unwrap(), value), "{} for {:e}", text, value);
                let seq_pair = format!("seq={seq}");
                prop_assert_eq!(parts.next(), Some(seq_pair.as_str()));
                let dur = duration.map(|ms| format!("dur={ms}"));
                prop_assert_eq!(parts.next(), dur.as_deref());
                prop_assert_eq!(parts.next(), None);
            }
            // `|START|COMMAND=SET|<variable>=<value>|SEQ=…[|DUR=…]|END|`, one frame.
            Dialect::Framed => {
                let inner = line
                    .strip_prefix("|START|")
                    .and_then(|rest| rest.strip_suffix("|END|"))
                    .ok_or_else(|| TestCaseError::fail(format!("not a frame: {line:?}")))?;
                let mut parts = inner.split('|');
                prop_assert_eq!(parts.next(), Some("COMMAND=SET"));
                let (name, text) = parts.next().unwrap().split_once('=').unwrap();
                prop_assert_eq!(name, variable.as_str());
                prop_assert!(same(text.parse::<f64>().unwrap(), value), "{} for {:e}", text, value);
                let seq_pair = format!("SEQ={seq}");
                prop_assert_eq!(parts.next(), Some(seq_pair.as_str()));
                let dur = duration.map(|ms| format!("DUR={ms}"));
                prop_assert_eq!(parts.next(), dur.as_deref());
                prop_assert_eq!(parts.next(), None);
            }
        }
    }
}

fn check_json_case(case: &JsonCase) -> Result<(), TestCaseError> {
    let r = reading(&case.line, &case.rules)?;
    prop_assert_eq!(r.dialect, Dialect::Json);
    prop_assert_eq!(
        r.device_id.as_ref().map(DeviceId::as_str),
        case.id.as_deref()
    );
    prop_assert_eq!(r.device_ms, case.ts);
    let got: BTreeMap<String, f64> = r
        .values
        .iter()
        .map(|v| (v.field.to_string(), v.value))
        .collect();
    prop_assert_eq!(
        got.len(),
        r.values.len(),
        "duplicate names in {:?}",
        r.values
    );
    prop_assert_eq!(
        got.keys().collect::<Vec<_>>(),
        case.values.keys().collect::<Vec<_>>()
    );
    for (name, sent) in &case.values {
        let got = got[name];
        prop_assert!(
            same(got, *sent),
            "{:?}: sent {:e}, got {:e} (line {})",
            name,
            sent,
            got,
            case.line
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Inputs the properties found, pinned
// ---------------------------------------------------------------------------------------------

/// A device registers a field named `f2`: its CSV lines then carry two values named `f2`
/// (the registered name, and the name of the unnamed second value).
#[test]
fn registered_names_do_not_collide_with_numbered_csv_values() {
    let rules = ParseRules {
        csv_fields: [].into(),
        max_fields: 64,
    };
    let registration = r#"{"register":{"fields":[{"name":"f2"}]}}"#;
    let Ok(DeviceMessage::Register { registration, .. }) = parse_line(registration, &rules) else {
        panic!("a registration");
    };
    let rules = ParseRules {
        csv_fields: registration
            .fields
            .into_iter()
            .map(|f| f.name.into())
            .collect(),
        ..rules
    };
    if let Ok(msg) = parse_line("7,0,0", &rules) {
        let names: Vec<_> = match &msg {
            DeviceMessage::Reading(r) => r.values.iter().map(|v| &*v.field).collect(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            names.iter().collect::<BTreeSet<_>>().len(),
            names.len(),
            "duplicate field names: {names:?}"
        );
    }
}

/// JSON readings must be as exact as CSV ones (serde_json's default float parsing is not).
#[test]
fn json_values_are_exact() {
    let rules = ParseRules {
        csv_fields: [].into(),
        max_fields: 64,
    };
    for text in ["5.2298210633531633e-76", "-3.860966849233032e217"] {
        let sent: f64 = text.parse().unwrap();
        let csv = parse_line(&format!("7,{text}"), &rules).unwrap();
        let json = parse_line(&format!("{{\"t\":{text}}}"), &rules).unwrap();
        let value = |msg: &DeviceMessage| match msg {
            DeviceMessage::Reading(r) => r.values[0].value,
            other => panic!("{other:?}"),
        };
        assert_eq!(value(&csv), sent, "CSV {text}");
        assert_eq!(value(&json), sent, "JSON {text}");
    }
}

/// Errors quote input with `{:?}`, which writes an unprintable character as up to 10
/// (`\u{10ffff}`): a 40-character quote or a 64-character name can become 400 or 640.
#[test]
fn errors_quoting_unprintable_input_stay_short() {
    let rules = ParseRules {
        csv_fields: ["counter".into()].into(),
        max_fields: 64,
    };
    let unprintable = "\u{e0001}";
    for line in [
        format!("7,{}", unprintable.repeat(40)),
        format!("{}=x", unprintable.repeat(MAX_NAME_CHARS)),
    ] {
        let err = parse_line(&line, &rules).unwrap_err().to_string();
        assert!(
            err.chars().count() < MAX_ERROR_CHARS,
            "{} characters: {err}",
            err.chars().count()
        );
    }
}
