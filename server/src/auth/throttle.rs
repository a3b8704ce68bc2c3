//! Login throttling. Pure: the caller passes the time, so tests need no clock.
//!
//! Two different brakes, because they protect against different attacks:
//! - per client address, *refusal*: after a few wrong passwords an address must wait, the
//!   wait doubling with each further failure. One machine guessing quickly gets nowhere.
//! - per account, *slow-down*: after a few wrong passwords for a name, every attempt for it
//!   (right or wrong, from anywhere) waits a little, growing to a few seconds. Many machines
//!   guessing one account get slowed, but the owner is never locked out, which a per-account
//!   lockout would let any attacker do.
//!
//! Failures are forgotten after [`FORGET_AFTER`] without new ones, and on a successful login.

use crate::address::client_network;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Wrong passwords an address may send before it has to wait.
pub const FREE_PER_ADDRESS: u32 = 5;
/// The first wait; it doubles with each further failure, up to [`MAX_ADDRESS_WAIT`].
const FIRST_ADDRESS_WAIT: Duration = Duration::from_secs(1);
const MAX_ADDRESS_WAIT: Duration = Duration::from_secs(15 * 60);
/// Wrong passwords for one account before attempts for it are slowed.
pub const FREE_PER_ACCOUNT: u32 = 3;
const FIRST_ACCOUNT_DELAY: Duration = Duration::from_millis(250);
const MAX_ACCOUNT_DELAY: Duration = Duration::from_secs(4);
pub const FORGET_AFTER: Duration = Duration::from_secs(30 * 60);
/// Entries kept per table; an attacker inventing names or addresses cannot grow it further.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

#[derive(Debug)]
struct Table<K> {
    entries: HashMap<K, Failures>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new() -> Self {
        Table {
            entries: HashMap::new(),
        }
    }

    fn count(&self, key: &K, now: Instant) -> Option<Failures> {
        self.entries
            .get(key)
            .filter(|f| now.saturating_duration_since(f.last) < FORGET_AFTER)
            .copied()
    }

    fn fail(&mut self, key: K, now: Instant) {
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(&key) {
            self.entries
                .retain(|_, f| now.saturating_duration_since(f.last) < FORGET_AFTER);
            if self.entries.len() >= MAX_ENTRIES {
                // Still full of fresh entries: an attack from very many places. Drop the
                // oldest half rather than grow.
                let mut times: Vec<Instant> = self.entries.values().map(|f| f.last).collect();
                times.sort_unstable();
                let cutoff = times[times.len() / 2];
                self.entries.retain(|_, f| f.last > cutoff);
            }
        }
        let count = self.count(&key, now).map_or(0, |f| f.count);
        self.entries.insert(
            key,
            Failures {
                count: count.saturating_add(1),
                last: now,
            },
        );
    }

    /// The failure counted for `key` ended now (its wait starts from the answer).
    fn touch(&mut self, key: &K, now: Instant) {
        if let Some(failures) = self.entries.get_mut(key) {
            failures.last = failures.last.max(now);
        }
    }

    fn clear(&mut self, key: &K) {
        self.entries.remove(key);
    }
}

/// `first` doubled for each failure past `free`, at most `max`.
fn backoff(count: u32, free: u32, first: Duration, max: Duration) -> Duration {
    match count.checked_sub(free) {
        None => Duration::ZERO,
        Some(extra) => first
            .checked_mul(1u32 << extra.min(20))
            .map_or(max, |d| d.min(max)),
    }
}

#[derive(Debug)]
pub struct LoginThrottle {
    addresses: Table<IpAddr>,
    accounts: Table<String>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle {
            addresses: Table::new(),
            accounts: Table::new(),
        }
    }
}

impl LoginThrottle {
    /// `Err(wait)` while `address` must wait before trying again.
    pub fn check_address(&self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let address = client_network(address);
        let Some(failures) = self.addresses.count(&address, now) else {
            return Ok(());
        };
        let wait = backoff(
            failures.count,
            FREE_PER_ADDRESS,
            FIRST_ADDRESS_WAIT,
            MAX_ADDRESS_WAIT,
        );
        let until = failures.last + wait;
        if now < until {
            Err(until - now)
        } else {
            Ok(())
        }
    }

    /// How long an attempt for `account` is held before its password is checked.
    pub fn account_delay(&self, account: &str, now: Instant) -> Duration {
        self.accounts
            .count(&account.to_string(), now)
            .map_or(Duration::ZERO, |f| {
                backoff(
                    f.count,
                    FREE_PER_ACCOUNT,
                    FIRST_ACCOUNT_DELAY,
                    MAX_ACCOUNT_DELAY,
                )
            })
    }

    pub fn failed(&mut self, address: IpAddr, account: &str, now: Instant) {
        self.addresses.fail(client_network(address), now);
        self.accounts.fail(account.to_string(), now);
    }

    /// A wrong password, already counted by [`LoginThrottle::failed`] when the attempt began,
    /// was answered now: the waits run from here.
    pub fn refused(&mut self, address: IpAddr, account: &str, now: Instant) {
        self.addresses.touch(&client_network(address), now);
        self.accounts.touch(&account.to_string(), now);
    }

    /// A failure that names no account worth a table entry (a name no user can have).
    pub fn address_failed(&mut self, address: IpAddr, now: Instant) {
        self.addresses.fail(client_network(address), now);
    }

    pub fn succeeded(&mut self, address: IpAddr, account: &str) {
        self.addresses.clear(&client_network(address));
        self.accounts.clear(&account.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn an_address_waits_longer_after_each_failure_past_the_free_ones() {
        let mut t = LoginThrottle::default();
        let start = Instant::now();
        for i in 0..FREE_PER_ADDRESS {
            assert!(t.check_address(ip(1), start).is_ok(), "attempt {i} is free");
            t.failed(ip(1), "admin", start);
        }
        // After the free ones: wait one second, then two, then four.
        assert_eq!(t.check_address(ip(1), start), Err(Duration::from_secs(1)));
        let later = start + Duration::from_secs(1);
        assert!(t.check_address(ip(1), later).is_ok());
        t.failed(ip(1), "admin", later);
        assert_eq!(t.check_address(ip(1), later), Err(Duration::from_secs(2)));
        // Other addresses are not affected.
        assert!(t.check_address(ip(2), later).is_ok());
        // Success clears the address; so does time.
        t.succeeded(ip(1), "admin");
        assert!(t.check_address(ip(1), later).is_ok());
        for _ in 0..20 {
            t.failed(ip(3), "admin", later);
        }
        assert_eq!(
            t.check_address(ip(3), later),
            Err(MAX_ADDRESS_WAIT),
            "capped"
        );
        assert!(t.check_address(ip(3), later + FORGET_AFTER).is_ok());
    }

    #[test]
    fn ipv6_guesses_from_one_64_network_count_together() {
        let mut t = LoginThrottle::default();
        let now = Instant::now();
        // A fresh address from the same /64 for every guess, as any IPv6 host can.
        let in_one_network = |i: u16| IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, i]);
        for i in 0..FREE_PER_ADDRESS as u16 {
            t.failed(in_one_network(i), "admin", now);
        }
        assert!(t.check_address(in_one_network(999), now).is_err());
        let next_network = IpAddr::from([0x2001, 0xdb8, 0, 2, 0, 0, 0, 1]);
        assert!(t.check_address(next_network, now).is_ok());
    }

    #[test]
    fn an_account_is_slowed_but_never_locked() {
        let mut t = LoginThrottle::default();
        let now = Instant::now();
        for i in 0..FREE_PER_ACCOUNT {
            assert_eq!(t.account_delay("admin", now), Duration::ZERO, "attempt {i}");
            t.failed(ip(i as u8), "admin", now);
        }
        assert_eq!(t.account_delay("admin", now), FIRST_ACCOUNT_DELAY);
        t.failed(ip(100), "admin", now);
        assert_eq!(t.account_delay("admin", now), FIRST_ACCOUNT_DELAY * 2);
        for i in 0..50 {
            t.failed(ip(i), "admin", now);
        }
        assert_eq!(t.account_delay("admin", now), MAX_ACCOUNT_DELAY);
        assert_eq!(t.account_delay("someone-else", now), Duration::ZERO);
    }

    #[test]
    fn the_tables_stay_bounded() {
        let mut t = LoginThrottle::default();
        let now = Instant::now();
        for i in 0..(MAX_ENTRIES + 10) {
            t.accounts
                .fail(format!("name-{i}"), now + Duration::from_millis(i as u64));
        }
        assert!(t.accounts.entries.len() <= MAX_ENTRIES);
    }
}
