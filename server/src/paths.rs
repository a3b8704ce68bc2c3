//! Fixed routes that more than the router names.

/// Devices connect here over WebSocket ([`crate::devices::websocket`]); public, as devices
/// present tokens rather than sessions.
pub const DEVICE_SOCKET: &str = "/ws/device";

/// `GET /healthz`, for monitors and service managers; public.
pub const HEALTH: &str = "/healthz";
