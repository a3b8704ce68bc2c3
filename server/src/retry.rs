//! Waiting before trying again. A serial port that was unplugged, an MQTT broker that is down and
//! a simulated device whose hub went away all retry the same way: soon at first, then less and
//! less often, never more than a few seconds apart so that recovery is quick once it is possible.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

const FIRST: Duration = Duration::from_millis(250);
const MAX: Duration = Duration::from_secs(5);

/// Exponential backoff from 250 ms, doubling up to 5 s.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: FIRST }
    }
}

impl Backoff {
    /// After a success: the next failure is retried soon again.
    pub fn reset(&mut self) {
        self.next = FIRST;
    }

    /// The wait before the next attempt; each call doubles the one after.
    fn take(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(MAX);
        wait
    }

    /// Sleeps before the next attempt. False when `stop` fired first: do not try again.
    pub async fn wait(&mut self, stop: &CancellationToken) -> bool {
        let wait = self.take();
        tokio::select! {
            _ = stop.cancelled() => false,
            _ = tokio::time::sleep(wait) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_five_seconds_and_starts_over_after_a_success() {
        let mut backoff = Backoff::default();
        let waits: Vec<u128> = (0..8).map(|_| backoff.take().as_millis()).collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
        backoff.reset();
        assert_eq!(backoff.take(), FIRST);
    }

    #[tokio::test]
    async fn a_stop_ends_the_wait() {
        let stop = CancellationToken::new();
        let mut backoff = Backoff::default();
        assert!(
            backoff.wait(&stop).await,
            "no stop: waits and says try again"
        );
        stop.cancel();
        assert!(!backoff.wait(&stop).await);
    }
}
