//! `GET /api/v1/events`: the hub's live events for programs, as Server-Sent Events. Each event
//! has an id; a client that reconnects with `Last-Event-ID` (as `EventSource` does by itself)
//! gets exactly the events after it, if the hub still keeps them
//! ([`crate::registry::REPLAY_EVENTS`]), else a `snapshot` event with the whole picture
//! first. Events: `snapshot`, `device` (came online, went offline, changed), `removed`,
//! `reading`, `command` (sent or a new status), `console`.

use crate::registry::Resumed;
use crate::state::AppState;
use app::api::ssr::{Credential, Hub, SignedIn};
use app::model::LiveEvent;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Extension;
use futures::Stream;
use serde::Deserialize;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use utoipa::IntoParams;

/// An open stream checks its session or token this often, and ends when it is no longer
/// valid (revoked, expired, signed out).
const CREDENTIAL_CHECK: Duration = Duration::from_secs(5);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only this device's events (its snapshot in detail).
    device: Option<String>,
}

/// Live events as Server-Sent Events (`text/event-stream`); resumable with `Last-Event-ID`.
#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    params(
        EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "The id of the last event received, to continue after it"),
    ),
    responses((status = 200, description = "An endless stream of events: `snapshot`, `device`, \
        `removed`, `reading`, `command`, `console`; data is JSON", content_type = "text/event-stream", body = String)))]
pub async fn stream(
    State(state): State<AppState>,
    Query(query): Query<EventsQuery>,
    Extension(who): Extension<SignedIn>,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let run = state.registry.run_id();
    let seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|id| parse_id(id, run));
    let resumed = state.registry.resume(query.device.as_deref(), seen);
    let mut follow = Follow {
        stopping: state.stopping(),
        state,
        focus: query.device,
        run,
        queue: VecDeque::new(),
        next_id: 0,
        events: None,
        credential: who.credential,
        next_check: Instant::now() + CREDENTIAL_CHECK,
    };
    follow.start(resumed);
    let events = futures::stream::unfold(follow, |mut follow| async move {
        follow.next().await.map(|event| (Ok(event), follow))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// `<run>-<n>`: the event number, if the id is from this run of the hub.
fn parse_id(id: &str, run: u64) -> Option<u64> {
    let (their_run, n) = id.trim().split_once('-')?;
    (u64::from_str_radix(their_run, 16).ok()? == run).then_some(())?;
    n.parse().ok()
}

struct Follow {
    state: AppState,
    focus: Option<String>,
    run: u64,
    /// Events ready to send.
    queue: VecDeque<Event>,
    /// The id the next received event has.
    next_id: u64,
    events: Option<tokio::sync::broadcast::Receiver<LiveEvent>>,
    stopping: CancellationToken,
    credential: Credential,
    next_check: Instant,
}

impl Follow {
    fn start(&mut self, resumed: Resumed) {
        if let Some(snapshot) = resumed.snapshot {
            let id = resumed.next_id - 1;
            self.push(id, &LiveEvent::Snapshot(snapshot));
        }
        for (id, event) in &resumed.missed {
            self.push(*id, event);
        }
        self.next_id = resumed.next_id;
        self.events = Some(resumed.events);
    }

    fn push(&mut self, id: u64, event: &LiveEvent) {
        if let Some(sse) = self
            .wanted(event)
            .then(|| sse_event(self.run, id, event))
            .flatten()
        {
            self.queue.push_back(sse);
        }
    }

    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            let events = self.events.as_mut()?;
            let received = tokio::select! {
                _ = self.stopping.cancelled() => return None,
                _ = tokio::time::sleep_until(self.next_check) => {
                    if !self.state.still_signed_in(&self.credential).await {
                        return None;
                    }
                    self.next_check = Instant::now() + CREDENTIAL_CHECK;
                    continue;
                }
                received = events.recv() => received,
            };
            match received {
                Ok(event) => {
                    let id = self.next_id;
                    self.next_id += 1;
                    self.push(id, &event);
                }
                Err(RecvError::Lagged(_)) => {
                    // Fell behind the live channel: take what was missed from the events the
                    // hub keeps (or a snapshot), then follow again.
                    let seen = self.next_id - 1;
                    let resumed = self
                        .state
                        .registry
                        .resume(self.focus.as_deref(), Some(seen));
                    self.start(resumed);
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// With a device named, only that device's events.
    fn wanted(&self, event: &LiveEvent) -> bool {
        let Some(focus) = &self.focus else {
            return true;
        };
        match event {
            LiveEvent::Device(d) => &d.id == focus,
            LiveEvent::Removed { device_id } | LiveEvent::Console { device_id, .. } => {
                device_id == focus
            }
            LiveEvent::Reading(r) => *r.device_id == **focus,
            LiveEvent::Command(c) => &c.device_id == focus,
            LiveEvent::Alarm(a) => &a.device_id == focus,
            LiveEvent::Snapshot(_)
            | LiveEvent::Fleet(_)
            | LiveEvent::Lagged { .. }
            | LiveEvent::Heartbeat => true,
        }
    }
}

fn sse_event(run: u64, id: u64, event: &LiveEvent) -> Option<Event> {
    let (kind, data) = match event {
        LiveEvent::Snapshot(snapshot) => ("snapshot", serde_json::to_string(snapshot)),
        LiveEvent::Device(device) => ("device", serde_json::to_string(device)),
        LiveEvent::Removed { device_id } => (
            "removed",
            serde_json::to_string(&serde_json::json!({ "device_id": device_id })),
        ),
        LiveEvent::Reading(reading) => ("reading", serde_json::to_string(reading)),
        LiveEvent::Command(command) => ("command", serde_json::to_string(command)),
        LiveEvent::Alarm(alarm) => ("alarm", serde_json::to_string(alarm)),
        LiveEvent::Console { device_id, line } => (
            "console",
            serde_json::to_string(&serde_json::json!({ "device_id": device_id, "line": line })),
        ),
        // The registry publishes none of these (the dashboard's stream makes them); the stream
        // has its own keep-alive.
        LiveEvent::Fleet(_) | LiveEvent::Lagged { .. } | LiveEvent::Heartbeat => return None,
    };
    Some(
        Event::default()
            .id(format!("{run:x}-{id}"))
            .event(kind)
            .data(data.ok()?),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ids_of_this_run_are_resumed() {
        assert_eq!(parse_id("ff-12", 255), Some(12));
        assert_eq!(parse_id("fe-12", 255), None);
        assert_eq!(parse_id("12", 255), None);
        assert_eq!(parse_id("ff-x", 255), None);
    }
}
