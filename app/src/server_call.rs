//! [`ServerCall`]: a server function called from an event handler (a button, a form), and what
//! went wrong with the last one, to show beside it.
//!
//! What the dashboard's buttons used a Leptos `Action` for, minus the rest of it (its input,
//! value and pending signals): each `Action` brought ~3 KiB (gzip) into the page's bundle.

use crate::error::AppError;
use leptos::prelude::*;
use std::future::Future;

#[derive(Clone, Copy)]
pub struct ServerCall {
    /// The last call's error, as a person reads it; `None` once one succeeded.
    error: RwSignal<Option<String>>,
    /// Calls started, so that an earlier call finishing late does not speak for a later one.
    started: StoredValue<u64>,
}

impl ServerCall {
    pub fn new() -> Self {
        ServerCall {
            error: RwSignal::new(None),
            started: StoredValue::new(0),
        }
    }

    /// Runs `call` in the background; its error (or none) becomes [`ServerCall::error`] unless
    /// another call was started meanwhile.
    pub fn run<T: 'static>(self, call: impl Future<Output = Result<T, AppError>> + 'static) {
        self.started.update_value(|n| *n += 1);
        let this_call = self.started.get_value();
        leptos::task::spawn_local(async move {
            let outcome = call.await.err().map(|e| e.to_string());
            if self.started.try_get_value() == Some(this_call) {
                self.error.set(outcome);
            }
        });
    }

    /// What went wrong with the last call (tracked: for a view).
    pub fn error(self) -> Option<String> {
        self.error.get()
    }
}

impl Default for ServerCall {
    fn default() -> Self {
        Self::new()
    }
}
