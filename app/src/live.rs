//! The browser end of the live stream: call [`crate::api::live_updates`], apply each event to the
//! dashboard state, and reconnect with backoff when the stream ends or goes quiet. Every
//! reconnection starts with a snapshot, so whatever was missed while away is filled in.

use crate::error::AppError;
use crate::model::{DashboardSnapshot, DashboardState, LiveEvent, Scope, Viewer};
use crate::time::{format_age, now_ms, Zone};
use leptos::prelude::*;
use std::time::Duration;

/// What the connection badge shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkStatus {
    Connecting,
    Live,
    Reconnecting,
}

impl LinkStatus {
    pub fn label(self) -> &'static str {
        match self {
            LinkStatus::Connecting => "connecting",
            LinkStatus::Live => "live",
            LinkStatus::Reconnecting => "reconnecting",
        }
    }
}

/// Reconnection delays: doubling from half a second up to ten seconds.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(10);

    pub fn new() -> Self {
        Backoff { next: Self::FIRST }
    }

    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        delay
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

/// Splits stream text into complete lines, keeping a partial last line for the next chunk
/// (the network may cut a chunk anywhere).
#[derive(Debug, Default)]
pub struct LineBuffer {
    partial: String,
}

impl LineBuffer {
    pub fn push(&mut self, chunk: &str) -> Vec<LiveEvent> {
        self.partial.push_str(chunk);
        let Some(end) = self.partial.rfind('\n') else {
            return Vec::new();
        };
        let complete: String = self.partial.drain(..=end).collect();
        complete
            .lines()
            .filter(|line| !line.trim().is_empty())
            // As bytes, like the page data and the server functions: one decoder per type.
            .filter_map(|line| match serde_json::from_slice(line.as_bytes()) {
                Ok(event) => Some(event),
                Err(err) => {
                    leptos::logging::warn!("ignoring a live event that did not parse: {err}");
                    None
                }
            })
            .collect()
    }
}

/// A stream that sends nothing for this long (three heartbeats) is treated as dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(45);
/// Events are applied to the page at most this often: with hundreds of busy devices the
/// stream brings many small chunks, and redrawing for each would starve the browser.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// Everything the pages share about the live connection, provided as context by the app.
#[derive(Debug, Clone, Copy)]
pub struct Live {
    pub state: RwSignal<DashboardState>,
    pub status: RwSignal<LinkStatus>,
    /// Set once the page is hydrated (effects run only in the browser).
    pub hydrated: RwSignal<bool>,
    /// The browser's clock, ticking every second once hydrated; `None` while rendering on the
    /// server, so that the first paint shows absolute times and hydrates without a mismatch.
    pub now: RwSignal<Option<i64>>,
    /// The zone times are shown in: UTC on the server, the reader's choice in the browser.
    pub zone: RwSignal<Zone>,
    /// How many times the stream's events were applied to the page (read by the benchmark).
    pub flushes: RwSignal<u64>,
    /// Who is signed in (from the first snapshot).
    pub viewer: RwSignal<Option<Viewer>>,
    /// How wide charts are drawn: [`crate::chart::CHART_WIDTH`] on the server, the screen's
    /// own once hydrated (narrower on a phone, so that labels keep their size).
    pub chart_width: RwSignal<u32>,
    /// What the page shows ([`Scope`]); the stream starts over with a fresh snapshot when it
    /// changes (the overview's filter, order or page).
    pub scope: RwSignal<Scope>,
}

/// Where the zone choice is remembered in the browser.
const ZONE_STORAGE_KEY: &str = "iothub.zone";

impl Live {
    /// Creates the shared signals, provides them as context, and (in the browser, after
    /// hydration) starts the clock and the stream for `scope`.
    pub fn provide(scope: Scope) -> Live {
        let live = Live {
            state: RwSignal::new(DashboardState::default()),
            status: RwSignal::new(LinkStatus::Connecting),
            hydrated: RwSignal::new(false),
            now: RwSignal::new(None),
            zone: RwSignal::new(Zone::Utc),
            flushes: RwSignal::new(0),
            viewer: RwSignal::new(None),
            chart_width: RwSignal::new(crate::chart::CHART_WIDTH),
            scope: RwSignal::new(scope),
        };
        provide_context(live);

        Effect::new(move |_| {
            live.hydrated.set(true);
            let viewport = window()
                .inner_width()
                .ok()
                .and_then(|w| w.as_f64())
                .unwrap_or(f64::NAN);
            live.chart_width
                .set(crate::chart::chart_width_for(viewport));
            live.zone.set(stored_zone().unwrap_or(Zone::Browser));
            live.now.set(Some(now_ms()));
            let _ = set_interval_with_handle(
                move || live.now.set(Some(now_ms())),
                Duration::from_secs(1),
            );
        });

        let (changed, scope_changes) = futures::channel::mpsc::unbounded::<()>();
        Effect::new(move |first_run_done: Option<()>| {
            live.scope.track();
            if first_run_done.is_some() {
                let _ = changed.unbounded_send(());
            }
        });
        let scope_changes = std::cell::Cell::new(Some(scope_changes));
        Effect::new(move |_| {
            if let Some(changes) = scope_changes.take() {
                leptos::task::spawn_local(run(live, changes));
            }
        });
        live
    }

    /// Takes a snapshot loaded for the first paint, unless the stream already delivered one
    /// at least as new for the same focus.
    pub fn seed(self, mut snapshot: DashboardSnapshot) {
        if let Some(viewer) = snapshot.viewer.take() {
            self.viewer.set(Some(viewer));
        }
        self.state.update_untracked(|s| {
            if s.focus != snapshot.focus || s.seq < snapshot.seq || s.devices.is_empty() {
                *s = snapshot.into();
            }
        });
    }

    /// Whether the signed-in person's role allows `action` (nothing before the first
    /// snapshot says who they are). The server checks again: this only hides what would be
    /// refused.
    pub fn may(self, action: crate::model::Permission) -> bool {
        self.viewer
            .with(|v| v.as_ref().is_some_and(|v| v.role.may(action)))
    }

    /// How long ago `ms` was ("12 s ago"), by the browser's clock. While the page is rendered
    /// on the server there is no reader's clock: "at 12:00:01 UTC", which hydrates unchanged.
    pub fn age(self, ms: i64) -> String {
        match self.now.get() {
            Some(now) => format_age(now - ms),
            None => format!("at {} UTC", Zone::Utc.clock(ms)),
        }
    }

    /// Remembers the reader's zone choice in the browser.
    pub fn choose_zone(self, zone: Zone) {
        self.zone.set(zone);
        if let Some(storage) = local_storage() {
            let _ = storage.set_item(ZONE_STORAGE_KEY, zone.key());
        }
    }
}

/// The shared live context (see [`Live::provide`]).
pub fn use_live() -> Live {
    expect_context::<Live>()
}

fn local_storage() -> Option<leptos::web_sys::Storage> {
    window().local_storage().ok().flatten()
}

fn stored_zone() -> Option<Zone> {
    let key = local_storage()?.get_item(ZONE_STORAGE_KEY).ok()??;
    Zone::from_key(&key)
}

/// After the overview's filter changes, the stream waits this long for the next keystroke
/// before it starts over.
const SCOPE_SETTLE: Duration = Duration::from_millis(200);

/// Runs the stream for the life of the page, reconnecting with backoff, and starting over at
/// once when the page's scope changes.
async fn run(live: Live, mut scope_changes: futures::channel::mpsc::UnboundedReceiver<()>) {
    use futures::future::{select, Either};
    use futures::StreamExt;
    let mut backoff = Backoff::new();
    loop {
        let mut scope_changed = false;
        match crate::api::live_updates(live.scope.get_untracked()).await {
            Ok(stream) => {
                let mut stream = Box::pin(stream.into_inner());
                let mut lines = LineBuffer::default();
                let mut pending = Vec::new();
                let mut last_flush = now_ms() - FLUSH_INTERVAL.as_millis() as i64;
                loop {
                    // Wait for more, but no longer than the next flush is due.
                    let wait = if pending.is_empty() {
                        SILENCE_LIMIT
                    } else {
                        let since = (now_ms() - last_flush).max(0) as u64;
                        FLUSH_INTERVAL.saturating_sub(Duration::from_millis(since))
                    };
                    let next = select(stream.next(), Box::pin(sleep(wait)));
                    let ended = match select(next, scope_changes.next()).await {
                        // The scope changed: what is pending belongs to the old one.
                        Either::Right(_) => {
                            sleep(SCOPE_SETTLE).await;
                            while scope_changes.try_recv().is_ok() {}
                            pending.clear();
                            scope_changed = true;
                            break;
                        }
                        Either::Left((next, _)) => match next {
                            Either::Left((Some(Ok(chunk)), _)) => {
                                live.status.set(LinkStatus::Live);
                                backoff.reset();
                                pending.extend(lines.push(&chunk));
                                false
                            }
                            // The stream ended or failed.
                            Either::Left(_) => true,
                            // Silence: a flush is due, or the connection is dead.
                            Either::Right(_) => pending.is_empty(),
                        },
                    };
                    let due = now_ms() - last_flush >= FLUSH_INTERVAL.as_millis() as i64;
                    if !pending.is_empty() && (due || ended) {
                        // One update for everything that arrived: one redraw.
                        let events = std::mem::take(&mut pending);
                        live.state
                            .update(|s| events.into_iter().for_each(|e| s.apply(e)));
                        live.flushes.update(|n| *n += 1);
                        last_flush = now_ms();
                    }
                    if ended {
                        break;
                    }
                }
            }
            Err(AppError::SignedOut) => {
                // The session expired or was ended elsewhere: sign in, then come back here.
                go_to_login();
                return;
            }
            Err(err) => leptos::logging::warn!("live stream failed to start: {err}"),
        }
        if scope_changed {
            continue;
        }
        live.status.set(LinkStatus::Reconnecting);
        sleep(backoff.next_delay()).await;
    }
}

/// Loads the login page, which brings the reader back to this page afterwards.
pub fn go_to_login() {
    let location = window().location();
    let here = format!(
        "{}{}",
        location.pathname().unwrap_or_default(),
        location.search().unwrap_or_default()
    );
    let _ = location.set_href(&crate::links::login_page(&here));
}

async fn sleep(duration: Duration) {
    let (done, wait) = futures::channel::oneshot::channel::<()>();
    set_timeout(
        move || {
            let _ = done.send(());
        },
        duration,
    );
    let _ = wait.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap_and_resets() {
        let mut b = Backoff::new();
        let delays: Vec<u64> = (0..7).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(500));
    }

    #[test]
    fn line_buffer_reassembles_events_split_across_chunks() {
        let line = LiveEvent::Heartbeat.to_line();
        let two = format!("{line}{line}");
        let (a, b) = two.split_at(line.len() + 5);
        let mut buf = LineBuffer::default();
        assert_eq!(buf.push(a), vec![LiveEvent::Heartbeat]);
        assert_eq!(buf.push(b), vec![LiveEvent::Heartbeat]);
        assert!(buf.push("\"heart").is_empty());
        assert_eq!(buf.push("beat\"\n"), vec![LiveEvent::Heartbeat]);
    }

    #[test]
    fn line_buffer_skips_garbage_lines() {
        let mut buf = LineBuffer::default();
        let input = format!("not json\n{}", LiveEvent::Heartbeat.to_line());
        assert_eq!(buf.push(&input), vec![LiveEvent::Heartbeat]);
    }
}
