//! Fixed routes that more than the router names.

/// Devices connect here over WebSocket ([`crate::devices::websocket`]); public, as devices
/// present tokens rather than sessions.
pub const DEVICE_SOCKET: &str = "/ws/device";

/// `GET /healthz`, for monitors and service managers; public.
pub const HEALTH: &str = "/healthz";

/// The REST API for programs (`Authorization: Bearer` with an API token, or a session).
pub const API_V1: &str = "/api/v1/";
/// The REST API's OpenAPI document; public (it describes, it holds no data).
pub const API_OPENAPI: &str = "/api/v1/openapi.json";
/// The REST API's reference page, made from that document; public.
pub const API_DOCS: &str = "/api/v1/docs";
/// Server-Sent Events for programs.
pub const API_EVENTS: &str = "/api/v1/events";
