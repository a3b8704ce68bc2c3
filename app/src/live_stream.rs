//! The server half of the live stream ([`crate::api::live_updates`]): a snapshot of the page's
//! scope, then the events of the devices it shows, the counts for the rest, and a fresh snapshot
//! when the overview's page may hold other devices now.

use crate::api::ssr::{Credential, SharedHub};
use crate::error::AppError;
use crate::model::{DashboardSnapshot, DeviceSummary, Listed, LiveEvent, Scope};
use leptos::server_fn::codec::TextStream;
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::broadcast::{error::RecvError, Receiver};
use tokio_util::sync::CancellationToken;

/// With nothing else to send, a heartbeat this often lets both ends notice a dead connection.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// An open stream checks its session this often: signing out (or removing the user) ends
/// the live view within this time, not only when the browser next reconnects.
pub const SESSION_CHECK: Duration = Duration::from_secs(5);
/// Events queued for a subscriber are sent together, up to this many per chunk.
const MAX_EVENTS_PER_CHUNK: usize = 256;
/// An overview whose page may have changed gets a fresh snapshot at most this often: while
/// thousands of devices connect, one per second rather than one per connection.
pub const REFRESH_AT_MOST_EVERY: Duration = Duration::from_secs(1);

struct Subscription {
    hub: SharedHub,
    scope: Scope,
    shown: Shown,
    rx: Receiver<LiveEvent>,
    pending: Option<LiveEvent>,
    stopping: CancellationToken,
    session: Option<Credential>,
    next_session_check: tokio::time::Instant,
    /// Devices came, went or changed: the counts are sent with the next chunk.
    fleet_changed: bool,
    /// The overview's page may hold other devices now: a fresh snapshot is due at
    /// `refresh_at`.
    refresh_at: Option<tokio::time::Instant>,
    last_refresh: tokio::time::Instant,
}

pub(crate) fn live_stream(
    hub: SharedHub,
    scope: Scope,
    session: Option<Credential>,
) -> TextStream<AppError> {
    let (snapshot, rx) = hub.subscribe(&scope);
    let shown = Shown::of(&scope, &snapshot);
    let stopping = hub.stopping();
    let now = tokio::time::Instant::now();
    let sub = Subscription {
        hub,
        scope,
        shown,
        rx,
        pending: Some(LiveEvent::Snapshot(snapshot)),
        stopping,
        session,
        next_session_check: now + SESSION_CHECK,
        fleet_changed: false,
        refresh_at: None,
        last_refresh: now,
    };
    TextStream::new(futures::stream::unfold(sub, next_chunk))
}

/// What a page shows, as its latest snapshot says.
struct Shown {
    /// The overview's page as listed, or the device page's device (also before it is first
    /// heard from).
    ids: HashSet<String>,
    /// The last card of a full overview page: a device listed after it changes nothing here.
    last: Option<DeviceSummary>,
}

impl Shown {
    fn of(scope: &Scope, snapshot: &DashboardSnapshot) -> Shown {
        let ids = match scope {
            Scope::Device(id) => HashSet::from([id.clone()]),
            _ => snapshot
                .devices
                .iter()
                .map(|d| d.summary.id.clone())
                .collect(),
        };
        let full = snapshot.devices.len() >= crate::model::PAGE_SIZE;
        let last = full
            .then(|| snapshot.devices.last().map(|d| d.summary.clone()))
            .flatten();
        Shown { ids, last }
    }

    fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }
}

async fn next_chunk(mut sub: Subscription) -> Option<(Result<String, AppError>, Subscription)> {
    if let Some(event) = sub.pending.take() {
        return Some((Ok(event.to_line()), sub));
    }
    let heartbeat = tokio::time::sleep(HEARTBEAT);
    tokio::pin!(heartbeat);
    let first = loop {
        let refresh_at = sub.refresh_at;
        tokio::select! {
            _ = sub.stopping.cancelled() => return None,
            _ = &mut heartbeat => break LiveEvent::Heartbeat.to_line(),
            _ = tokio::time::sleep_until(sub.next_session_check), if sub.session.is_some() => {
                if !sub.still_signed_in().await {
                    // Ending the stream is enough: the page reconnects, is refused with
                    // SignedOut and goes to the login page.
                    return None;
                }
            }
            _ = tokio::time::sleep_until(refresh_at.unwrap_or_else(tokio::time::Instant::now)),
                if refresh_at.is_some() => break sub.refresh(),
            received = sub.rx.recv() => match received {
                Ok(event) => match sub.take(event) {
                    Some(line) => break line,
                    // Only the counts changed: they go out now, below.
                    None if sub.fleet_changed => break String::new(),
                    None => continue,
                },
                Err(RecvError::Lagged(missed)) => {
                    return Some((Ok(resync(&mut sub, missed)), sub))
                }
                Err(RecvError::Closed) => return None,
            },
        }
    };
    let mut chunk = first;
    // Whatever else is already queued goes out in the same chunk: fewer, larger writes
    // when devices are busy.
    for _ in 1..MAX_EVENTS_PER_CHUNK {
        match sub.rx.try_recv() {
            Ok(event) => chunk.extend(sub.take(event)),
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(missed)) => {
                chunk.push_str(&resync(&mut sub, missed));
                break;
            }
            Err(_) => break,
        }
    }
    if std::mem::take(&mut sub.fleet_changed) {
        chunk.push_str(&LiveEvent::Fleet(sub.hub.fleet()).to_line());
    }
    Some((Ok(chunk), sub))
}

impl Subscription {
    async fn still_signed_in(&mut self) -> bool {
        self.next_session_check = tokio::time::Instant::now() + SESSION_CHECK;
        match &self.session {
            Some(session) => self.hub.still_signed_in(session).await,
            None => true,
        }
    }

    /// What the page gets of `event`: its line, or nothing. A page gets the readings,
    /// console lines (device page only) and changes of the devices it shows, every command
    /// and alarm, and of other devices only the counts; an overview learns that its page
    /// may now hold other devices.
    fn take(&mut self, event: LiveEvent) -> Option<String> {
        let wanted = match &event {
            LiveEvent::Reading(r) => self.shown.contains(&r.device_id),
            LiveEvent::Console { device_id, .. } => self.scope.focus() == Some(device_id.as_str()),
            LiveEvent::Device(summary) => {
                self.fleet_changed = true;
                let shown = self.shown.contains(&summary.id);
                if let Scope::Devices(query) = &self.scope {
                    // A device not on the page may belong there now (unless it is listed
                    // after a full page); one on it may move (unless the order is by name,
                    // which a change here leaves alone).
                    let device = Listed::of(summary);
                    let may_change = if shown {
                        query.order != crate::model::DeviceOrder::Name
                    } else {
                        query.matches(device)
                            && self
                                .shown
                                .last
                                .as_ref()
                                .is_none_or(|last| query.precedes(device, Listed::of(last)))
                    };
                    if may_change {
                        self.refresh_soon();
                    }
                }
                shown
            }
            LiveEvent::Removed { device_id } => {
                self.fleet_changed = true;
                let shown = self.shown.contains(device_id);
                if shown && matches!(self.scope, Scope::Devices(_)) {
                    // Another device may take its place on the page.
                    self.refresh_soon();
                }
                shown
            }
            _ => true,
        };
        wanted.then(|| event.to_line())
    }

    fn refresh_soon(&mut self) {
        if self.refresh_at.is_none() {
            self.refresh_at =
                Some((self.last_refresh + REFRESH_AT_MOST_EVERY).max(tokio::time::Instant::now()));
        }
    }

    /// A fresh snapshot of the page, and the events after it.
    fn refresh(&mut self) -> String {
        self.refresh_at = None;
        self.last_refresh = tokio::time::Instant::now();
        self.fleet_changed = false;
        let (snapshot, rx) = self.hub.subscribe(&self.scope);
        self.rx = rx;
        self.shown = Shown::of(&self.scope, &snapshot);
        LiveEvent::Snapshot(snapshot).to_line()
    }
}

/// A slow browser missed events: tell it, and start it over from a fresh snapshot.
fn resync(sub: &mut Subscription, missed: u64) -> String {
    metrics::counter!("iothub_live_lagged_total").increment(1);
    tracing::debug!(missed, "live subscriber lagged; sending a fresh snapshot");
    let mut lines = LiveEvent::Lagged { missed }.to_line();
    lines.push_str(&sub.refresh());
    lines
}
