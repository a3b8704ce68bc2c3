//! The browser end of the live stream: call [`crate::api::live_updates`], apply each event to the
//! dashboard state, and reconnect with backoff when the stream ends or goes quiet. Every
//! reconnection starts with a snapshot, so whatever was missed while away is filled in.

use crate::model::{DashboardState, LiveEvent};
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
            .filter_map(|line| match serde_json::from_str(line) {
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

/// Starts the live stream in the browser; it runs for the life of the page.
pub fn start(state: RwSignal<DashboardState>, status: RwSignal<LinkStatus>) {
    leptos::task::spawn_local(async move {
        use futures::StreamExt;
        let mut backoff = Backoff::new();
        loop {
            match crate::api::live_updates().await {
                Ok(stream) => {
                    let mut stream = Box::pin(stream.into_inner());
                    let mut lines = LineBuffer::default();
                    loop {
                        let next =
                            futures::future::select(stream.next(), Box::pin(sleep(SILENCE_LIMIT)));
                        let chunk = match next.await {
                            futures::future::Either::Left((Some(Ok(chunk)), _)) => chunk,
                            _ => break,
                        };
                        status.set(LinkStatus::Live);
                        backoff.reset();
                        let events = lines.push(&chunk);
                        if !events.is_empty() {
                            // One update per chunk: a burst of readings redraws once.
                            state.update(|s| events.into_iter().for_each(|e| s.apply(e)));
                        }
                    }
                }
                Err(err) => leptos::logging::warn!("live stream failed to start: {err}"),
            }
            status.set(LinkStatus::Reconnecting);
            sleep(backoff.next_delay()).await;
        }
    });
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
        assert!(buf.push("{\"type\":\"heart").is_empty());
        assert_eq!(buf.push("beat\"}\n"), vec![LiveEvent::Heartbeat]);
    }

    #[test]
    fn line_buffer_skips_garbage_lines() {
        let mut buf = LineBuffer::default();
        let input = format!("not json\n{}", LiveEvent::Heartbeat.to_line());
        assert_eq!(buf.push(&input), vec![LiveEvent::Heartbeat]);
    }
}
