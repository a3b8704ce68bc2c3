//! When to renew a certificate, and what the hub reads off one to decide: pure functions of
//! the certificate and the time, tested without a CA.

use std::time::Duration;

/// Renew at most this long before a certificate ends (Let's Encrypt's certificates live 90
/// days; it asks for renewal 30 days before).
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// The wait after the first failed attempt; it doubles with each failure in a row, up to
/// [`LONGEST_RETRY`]. Two minutes keeps a hub with a wrong port-forward under Let's Encrypt's
/// limit of five failed validations per name per hour.
pub const FIRST_RETRY: Duration = Duration::from_secs(120);
pub const LONGEST_RETRY: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("not an X.509 certificate: {0}")]
    Parse(String),
}

/// What the hub needs to know of a certificate it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    /// Validity, in seconds since 1970.
    pub not_before: i64,
    pub not_after: i64,
    /// The DNS names it is for (lower case).
    pub names: Vec<String>,
    /// The serial number, in hex (for the log).
    pub serial: String,
}

impl CertificateFacts {
    pub fn of(der: &[u8]) -> Result<CertificateFacts, CertificateError> {
        let (_, certificate) = x509_parser::parse_x509_certificate(der)
            .map_err(|err| CertificateError::Parse(err.to_string()))?;
        let validity = certificate.validity();
        let names = certificate
            .subject_alternative_name()
            .map_err(|err| CertificateError::Parse(err.to_string()))?
            .map(|extension| {
                extension
                    .value
                    .general_names
                    .iter()
                    .filter_map(|name| match name {
                        x509_parser::extensions::GeneralName::DNSName(dns) => {
                            Some(dns.to_ascii_lowercase())
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(CertificateFacts {
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
            names,
            serial: certificate.raw_serial_as_string(),
        })
    }

    /// Whether it is for every one of `domains`.
    pub fn covers(&self, domains: &[String]) -> bool {
        domains
            .iter()
            .all(|domain| self.names.contains(&domain.to_ascii_lowercase()))
    }

    /// When to ask for the next one (seconds since 1970): a third of its lifetime before it
    /// ends, or [`RENEW_BEFORE`], whichever is nearer to the end. A 90-day certificate is
    /// renewed 30 days before, a 6-day one 2 days before.
    pub fn renew_at(&self) -> i64 {
        let lifetime = self.not_after.saturating_sub(self.not_before).max(0);
        let before = (lifetime / 3).min(RENEW_BEFORE.as_secs() as i64);
        self.not_after.saturating_sub(before)
    }
}

/// How long to wait before the next attempt after `failures` failed ones in a row (at least
/// one).
pub fn retry_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_RETRY
        .saturating_mul(1 << doublings)
        .min(LONGEST_RETRY)
}

/// How long from `now` (seconds since 1970) until `at`; zero when it is past.
pub fn until(at: i64, now: i64) -> Duration {
    Duration::from_secs(at.saturating_sub(now).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 3600;

    fn lasting(not_before: i64, days: i64) -> CertificateFacts {
        CertificateFacts {
            not_before,
            not_after: not_before + days * DAY,
            names: vec!["hub.example.org".into()],
            serial: "01".into(),
        }
    }

    #[test]
    fn a_lets_encrypt_certificate_is_renewed_thirty_days_before_it_ends() {
        let start = 1_700_000_000;
        assert_eq!(lasting(start, 90).renew_at(), start + 60 * DAY);
    }

    #[test]
    fn a_short_lived_certificate_is_renewed_with_a_third_of_its_life_left() {
        let start = 1_700_000_000;
        assert_eq!(lasting(start, 6).renew_at(), start + 4 * DAY);
        let seconds = CertificateFacts {
            not_after: start + 12,
            ..lasting(start, 0)
        };
        assert_eq!(seconds.renew_at(), start + 8);
    }

    #[test]
    fn a_long_certificate_is_renewed_thirty_days_before_it_ends() {
        let start = 1_700_000_000;
        let five_years = lasting(start, 5 * 365);
        assert_eq!(five_years.renew_at(), five_years.not_after - 30 * DAY);
    }

    #[test]
    fn a_certificate_ending_before_it_starts_is_due_at_once() {
        let broken = CertificateFacts {
            not_before: 2_000,
            not_after: 1_000,
            names: vec![],
            serial: "01".into(),
        };
        assert_eq!(broken.renew_at(), 1_000);
        assert_eq!(until(broken.renew_at(), 1_500), Duration::ZERO);
    }

    #[test]
    fn failures_back_off_from_two_minutes_to_six_hours() {
        assert_eq!(retry_after(1), Duration::from_secs(120));
        assert_eq!(retry_after(2), Duration::from_secs(240));
        assert_eq!(retry_after(5), Duration::from_secs(120 * 16));
        assert_eq!(retry_after(9), LONGEST_RETRY);
        assert_eq!(retry_after(u32::MAX), LONGEST_RETRY);
    }

    #[test]
    fn a_certificate_covers_the_names_it_lists_whatever_their_case() {
        let facts = lasting(0, 90);
        assert!(facts.covers(&["HUB.example.org".into()]));
        assert!(!facts.covers(&["hub.example.org".into(), "other.example.org".into()]));
    }

    #[test]
    fn facts_are_read_off_a_real_certificate() {
        let made = rcgen::generate_simple_self_signed(vec!["Hub.Example.org".into()]).unwrap();
        let facts = CertificateFacts::of(made.cert.der()).unwrap();
        assert_eq!(facts.names, vec!["hub.example.org".to_string()]);
        assert!(facts.not_after > facts.not_before);
        assert!(CertificateFacts::of(b"not a certificate").is_err());
    }
}
