//! Device tokens and who is looking, as the dashboard shows them.

use serde::{Deserialize, Serialize};

/// A device token as the dashboard lists it. The token itself is shown once, when created
/// ([`NewDeviceToken`]); the server keeps only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DeviceToken {
    pub id: i64,
    /// The one device id this token lets connect.
    pub device_id: String,
    /// What the person called it ("kitchen ESP32").
    pub label: String,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}

/// A token just created: the only time its secret leaves the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NewDeviceToken {
    pub token: DeviceToken,
    pub secret: String,
}

/// An API token as its page lists it: what a person's program calls the REST API with
/// (`Authorization: Bearer …`). It acts as its user, but never beyond its `scope`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ApiToken {
    pub id: i64,
    /// The user it acts for.
    pub user: String,
    pub label: String,
    /// The most it may do: `viewer` reads, `operator` also sends commands, `admin` everything
    /// its user may.
    pub scope: super::Role,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
    pub last_used_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}

/// An API token just created: the only time its secret leaves the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NewApiToken {
    pub token: ApiToken,
    pub secret: String,
}

/// Who is looking at the dashboard, and what the server wants them to know about its setup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Viewer {
    /// The signed-in user.
    pub user: String,
    /// What they may do: the pages hide what their role cannot use.
    #[serde(default)]
    pub role: super::Role,
    /// Devices may connect without a token (`--allow-tokenless-devices`): the dashboard warns.
    pub tokenless_devices: bool,
}
