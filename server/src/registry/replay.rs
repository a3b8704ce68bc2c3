//! Event ids for programs' event streams (`GET /api/v1/events`, Server-Sent Events): every
//! published event is numbered, and once a stream has asked, the last [`REPLAY_EVENTS`] are
//! kept, so that a stream reconnecting with the last id it saw (`Last-Event-ID`) continues
//! with exactly the events after it: nothing missed, nothing twice. A stream that has been
//! away longer (or comes from an earlier run of the hub) starts over from a snapshot.
//!
//! Nothing is kept until the first such stream: the browsers' live view does not need it,
//! and keeping costs a copy of every event.

use super::{snapshot_of, Registry, Selection};
use app::model::{DashboardSnapshot, LiveEvent, Scope};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::sync::broadcast;

/// Events kept for streams that reconnect (at 100 readings a second, 100 s worth).
pub const REPLAY_EVENTS: usize = 10_000;

pub(super) struct Replay {
    /// Names this run of the hub: ids from an earlier run mean nothing now.
    run: u64,
    /// The id of the last published event. Events are published under the registry's state
    /// lock, so ids are given in publishing order.
    last_id: AtomicU64,
    keeping: AtomicBool,
    kept: Mutex<VecDeque<(u64, LiveEvent)>>,
}

impl Replay {
    pub(super) fn new() -> Replay {
        Replay {
            run: fastrand::u64(..),
            last_id: AtomicU64::new(0),
            keeping: AtomicBool::new(false),
            kept: Mutex::new(VecDeque::new()),
        }
    }

    /// Numbers a published event (and keeps a copy once a stream has asked).
    pub(super) fn note(&self, event: &LiveEvent) {
        let id = self.last_id.fetch_add(1, Ordering::Relaxed) + 1;
        if self.keeping.load(Ordering::Relaxed) {
            let mut kept = self.kept.lock();
            if kept.len() >= REPLAY_EVENTS {
                kept.pop_front();
            }
            kept.push_back((id, event.clone()));
        }
    }
}

/// Where an event stream (re)starts.
pub struct Resumed {
    /// The whole picture as of event `next_id - 1`, when the stream is new or cannot continue
    /// where it left off.
    pub snapshot: Option<DashboardSnapshot>,
    /// Kept events after the id the stream saw last, in order.
    pub missed: Vec<(u64, LiveEvent)>,
    /// The id of the first event `events` will deliver; each later one is one more (a lagging
    /// receiver is told how many it missed).
    pub next_id: u64,
    pub events: broadcast::Receiver<LiveEvent>,
}

impl Registry {
    /// What names this run of the hub in event ids.
    pub fn run_id(&self) -> u64 {
        self.shared.replay.run
    }

    /// A stream for `focus` (one device's events, or all) that saw events up to `seen`, if any.
    pub fn resume(&self, focus: Option<&str>, seen: Option<u64>) -> Resumed {
        // Holding the state lock: nothing is published until the receiver exists.
        let state = self.lock();
        let replay = &self.shared.replay;
        replay.keeping.store(true, Ordering::Relaxed);
        let last = replay.last_id.load(Ordering::Relaxed);
        let missed = match seen {
            Some(seen) if seen == last => Some(Vec::new()),
            Some(seen) if seen < last => {
                let kept = replay.kept.lock();
                match kept.front() {
                    Some((oldest, _)) if *oldest <= seen + 1 => {
                        Some(kept.iter().filter(|(id, _)| *id > seen).cloned().collect())
                    }
                    _ => None,
                }
            }
            // New, or an id this run never gave.
            _ => None,
        };
        let (snapshot, missed) = match missed {
            Some(missed) => (None, missed),
            None => {
                let scope = focus.map(|id| Scope::Device(id.to_string()));
                let selection = scope
                    .as_ref()
                    .map_or(Selection::Sparklines, Selection::Page);
                (Some(snapshot_of(&state, selection)), Vec::new())
            }
        };
        Resumed {
            snapshot,
            missed,
            next_id: last + 1,
            events: self.shared.events.subscribe(),
        }
    }
}
