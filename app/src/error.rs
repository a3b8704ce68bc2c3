//! The one error type the browser sees. Internal detail stays in the server log; the browser gets
//! a short, stable message it can show to a person.

use leptos::server_fn::{
    codec::JsonEncoding,
    error::{FromServerFnError, ServerFnErrorErr},
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum AppError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    /// No valid session: the person must sign in (again).
    #[error("signed out: sign in again")]
    SignedOut,
    /// Signed in, but the role (or the API token's scope) does not allow it.
    #[error("not allowed: {0}")]
    Forbidden(String),
    /// The server is up but a part it needs (the store, say) is not answering.
    #[error("temporarily unavailable, try again")]
    Unavailable,
    /// Something broke on the server; details are in its log.
    #[error("internal error")]
    Internal,
    /// The request never reached the function, or its answer could not be read.
    #[error("connection problem: {0}")]
    Transport(String),
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::Transport(value.to_string())
    }
}

#[cfg(feature = "ssr")]
impl AppError {
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::SignedOut => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            AppError::Transport(_) => StatusCode::BAD_REQUEST,
        }
    }
}
