//! Per-connection limits that keep one device from hurting the others: a token bucket for
//! readings, and an error budget that ends connections whose abuse persists. Pure: the caller
//! passes the time, so tests need no clock.

use std::time::{Duration, Instant};

/// Allows `rate` events per second on average, with bursts of up to one second's worth.
#[derive(Debug, Clone)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl RateLimit {
    pub fn new(rate_per_sec: f64, now: Instant) -> Self {
        let rate = rate_per_sec.max(f64::MIN_POSITIVE);
        RateLimit::with_burst(rate, rate.max(1.0), now)
    }

    /// `rate` events per second on average, and bursts of up to `burst`.
    pub fn with_burst(rate_per_sec: f64, burst: f64, now: Instant) -> Self {
        let burst = burst.max(1.0);
        RateLimit {
            rate: rate_per_sec.max(f64::MIN_POSITIVE),
            burst,
            tokens: burst,
            updated: now,
        }
    }

    /// Takes one token; false when the device is over its rate.
    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.updated = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Counts errors in a sliding window; more than `max` within `window` means the device is
/// misbehaving on purpose or is badly broken, and its connection is closed.
#[derive(Debug, Clone)]
pub struct ErrorBudget {
    max: usize,
    window: Duration,
    recent: std::collections::VecDeque<Instant>,
}

impl ErrorBudget {
    pub fn new(max: usize, window: Duration) -> Self {
        ErrorBudget {
            max,
            window,
            recent: Default::default(),
        }
    }

    /// Records an error; true when the budget is exhausted.
    pub fn exhausted_after_error(&mut self, now: Instant) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > self.window)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        self.recent.len() > self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_allows_a_burst_then_the_rate() {
        let start = Instant::now();
        let mut limit = RateLimit::new(10.0, start);
        let burst = (0..20).filter(|_| limit.allow(start)).count();
        assert_eq!(burst, 10, "one second's worth at once");
        assert!(!limit.allow(start + Duration::from_millis(50)));
        assert!(
            limit.allow(start + Duration::from_millis(110)),
            "refilled after 1/10 s"
        );
        // A long pause refills the bucket, but only up to one second's worth.
        let later = start + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| limit.allow(later)).count(), 10);
    }

    #[test]
    fn slow_rates_still_allow_one() {
        let start = Instant::now();
        let mut limit = RateLimit::new(0.5, start);
        assert!(limit.allow(start));
        assert!(!limit.allow(start + Duration::from_secs(1)));
        assert!(limit.allow(start + Duration::from_secs(3)));
    }

    #[test]
    fn error_budget_forgives_old_errors() {
        let start = Instant::now();
        let mut budget = ErrorBudget::new(3, Duration::from_secs(10));
        assert!(!(0..3).any(|_| budget.exhausted_after_error(start)));
        assert!(budget.exhausted_after_error(start + Duration::from_secs(1)));
        let mut budget = ErrorBudget::new(3, Duration::from_secs(10));
        for i in 0..100 {
            assert!(
                !budget.exhausted_after_error(start + Duration::from_secs(4 * i)),
                "one error every 4 s is fine"
            );
        }
    }
}
