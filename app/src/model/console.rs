//! A device's console: the raw lines to and from it, as the device page shows them.

use serde::{Deserialize, Serialize};

/// Which way a console line went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum Direction {
    /// Received from the device.
    In,
    /// Sent to the device.
    Out,
    /// An error reply the server sent about a line it could not use.
    Error,
}

/// A raw line in a device's console.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ConsoleLine {
    pub ms: i64,
    pub direction: Direction,
    pub text: String,
}
