//! The configuration file (`--config /etc/iothub/config.toml`, or `IOTHUB_CONFIG`): the same
//! settings as the flags, named like them (`bind = "0.0.0.0:3000"`, `max-fields = 64`;
//! `max_fields` works too). Precedence: flag > environment > file > default.
//!
//! The file is applied by turning each setting into its `IOTHUB_*` environment variable when
//! that is not set already; clap then does the rest. That happens first thing in `main`,
//! before any thread exists.

use crate::config::ServeArgs;
use clap::Args;
use std::path::{Path, PathBuf};

pub const CONFIG_ENV: &str = "IOTHUB_CONFIG";

/// The key of the file's alarm rules, `[[alarm_rule]]`: tables, not a setting of a flag.
pub const ALARM_RULES_KEY: &str = "alarm_rule";

#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("the config file {path}: unknown key {key:?}; known keys: {known}")]
    UnknownKey {
        path: PathBuf,
        key: String,
        known: String,
    },
    #[error("the config file {path}: key {key:?}: {message}")]
    BadValue {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// `--config FILE`/`--config=FILE` among the arguments, else `IOTHUB_CONFIG`.
pub fn path_from(args: &[String]) -> Option<PathBuf> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os(CONFIG_ENV).map(PathBuf::from)
}

/// The file's `[[alarm_rule]]` tables as rules, each checked as the dashboard checks one:
///
/// ```toml
/// [[alarm_rule]]
/// name = "kitchen too hot"
/// devices = "kitchen-*"
/// condition = { kind = "above", field = "temp", threshold = 30.0, clear = 28.0, hold_s = 60 }
/// ntfy_url = "https://ntfy.sh/my-hub-alarms"
/// ```
pub fn alarm_rules(path: &Path) -> Result<Vec<app::model::NewRule>, ConfigFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut table: toml::Table =
        text.parse()
            .map_err(|e: toml::de::Error| ConfigFileError::Syntax {
                path: path.to_path_buf(),
                message: e.message().to_string(),
            })?;
    let Some(value) = table.remove(ALARM_RULES_KEY) else {
        return Ok(Vec::new());
    };
    let bad = |key: String, message: String| ConfigFileError::BadValue {
        path: path.to_path_buf(),
        key,
        message,
    };
    let toml::Value::Array(items) = value else {
        return Err(bad(
            ALARM_RULES_KEY.into(),
            "alarm rules are [[alarm_rule]] tables".into(),
        ));
    };
    let mut rules: Vec<app::model::NewRule> = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let key = format!("{ALARM_RULES_KEY}[{i}]");
        let rule: app::model::NewRule = item
            .try_into()
            .map_err(|e: toml::de::Error| bad(key.clone(), e.message().to_string()))?;
        rule.validate().map_err(|why| bad(key.clone(), why))?;
        if rules.iter().any(|r| r.name.trim() == rule.name.trim()) {
            return Err(bad(
                key,
                format!("a second rule named {:?}", rule.name.trim()),
            ));
        }
        rules.push(rule);
    }
    Ok(rules)
}

/// The environment variables the file sets (those not set already), after checking every key
/// and value against the flags they stand for.
pub fn settings(
    path: &Path,
    is_set: impl Fn(&str) -> bool,
) -> Result<Vec<(String, String)>, ConfigFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let table: toml::Table =
        text.parse()
            .map_err(|e: toml::de::Error| ConfigFileError::Syntax {
                path: path.to_path_buf(),
                message: e.message().to_string(),
            })?;
    let command = ServeArgs::augment_args(clap::Command::new("iothub"));
    // (long name, environment variable, takes a value)
    let flags: Vec<(String, String, bool)> = command
        .get_arguments()
        .filter_map(|arg| {
            let long = arg.get_long()?.to_string();
            let env = arg.get_env()?.to_string_lossy().into_owned();
            Some((long, env, arg.get_action().takes_values()))
        })
        .collect();
    let mut out = Vec::new();
    for (key, value) in table {
        if key == ALARM_RULES_KEY {
            continue;
        }
        let long = key.replace('_', "-");
        let Some((_, env, takes_value)) = flags.iter().find(|(l, _, _)| *l == long) else {
            return Err(ConfigFileError::UnknownKey {
                path: path.to_path_buf(),
                known: flags
                    .iter()
                    .map(|(l, _, _)| l.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                key,
            });
        };
        let bad = |message: String| ConfigFileError::BadValue {
            path: path.to_path_buf(),
            key: key.clone(),
            message,
        };
        let text = match &value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            other => return Err(bad(format!("{} is not a setting value", other.type_str()))),
        };
        if *takes_value {
            // The flag's own parser says what is wrong (range, choices, format); without the
            // environment, so the value is checked on its own.
            let check = ServeArgs::command_without_env()
                .try_get_matches_from(["iothub".to_string(), format!("--{long}={text}")]);
            if let Err(err) = check {
                let message = err.render().to_string();
                let first = message
                    .lines()
                    .next()
                    .unwrap_or("invalid value")
                    .trim_start_matches("error: ");
                return Err(bad(first.to_string()));
            }
        } else if !matches!(value, toml::Value::Boolean(_)) {
            return Err(bad(format!("{text:?} is not true or false")));
        }
        if !is_set(env) {
            out.push((env.clone(), text));
        }
    }
    Ok(out)
}
