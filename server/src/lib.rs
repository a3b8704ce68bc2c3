//! The hub's server: device endpoints, registry, storage, configuration, and the web app.
//!
//! # Layout
//! The path of one reading is a straight line through these modules:
//!
//! 1. [`devices`]: the transports ([`devices::websocket`], [`devices::tcp`],
//!    [`devices::serial`], [`devices::mqtt`]) do I/O only; each connection runs the one
//!    [`devices::conversation`] loop and hands its lines to its [`devices::session`], which
//!    drives the rest. They see the hub through a narrow [`devices::DeviceContext`].
//! 2. [`protocol`]: pure parsing of a text line (CSV, `key=value`, JSON) into a reading, an
//!    acknowledgement or a registration; [`limits`] keeps each device within its rate.
//! 3. [`registry`]: who is online, their latest values and recent readings; publishes every
//!    change to live subscribers (browsers) through a bounded broadcast channel. Commands to
//!    devices are numbered and tracked in `registry/commands.rs`.
//! 4. [`storage`]: a writer task batches readings into SQLite (or PostgreSQL) transactions.
//! 5. [`hub`]: what the dashboard's server functions (in the `app` crate) see of all this;
//!    the `app` crate turns the registry's broadcast into the browser's live stream and charts.
//!
//! History leaves the store through the `device_series` server function (downsampled by the
//! database) and [`export`] (CSV downloads, streamed).
//!
//! Before any of it, [`auth`]: devices present a token, people sign in; [`security`] sets
//! headers and checks where browser requests come from.
//!
//! Around them: [`config`] (flags in groups, with environment fallback), [`state`] (the web
//! side's [`state::AppState`]), [`router`] (routes and layers), [`bundle`] (the browser bundle's
//! names and `/pkg`), [`sweeps`] (background work),
//! [`startup`] (start-up and graceful shutdown) and [`simulator`] (fake devices); [`cluster`]
//! links hubs that share a NATS server (`--cluster-nats`). No module
//! imports one that imports it; `tests/layout.rs` checks that, and file lengths.

pub mod address;
pub mod admin;
pub mod alerts;
pub mod auth;
pub mod bundle;
pub mod certificates;
pub mod client;
pub mod cluster;
pub mod config;
pub mod config_file;
pub mod devices;
pub mod export;
pub mod hub;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod paths;
pub mod protocol;
pub mod registry;
pub mod rest;
pub mod retry;
pub mod router;
pub mod security;
pub mod simulator;
pub mod startup;
pub mod state;
pub mod storage;
pub mod sweeps;
pub mod url_credentials;

/// Milliseconds since the Unix epoch, the time unit of every reading.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
