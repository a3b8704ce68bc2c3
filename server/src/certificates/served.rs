//! The certificate the HTTPS listener presents, swapped in place when a new one arrives (so a
//! renewal needs no restart), and the short-lived certificates that answer ACME TLS-ALPN-01
//! challenges (RFC 8737) on the same port.

use parking_lot::RwLock;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::Arc;

/// The ALPN protocol an ACME CA offers, alone, when it checks a TLS-ALPN-01 challenge.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// What the HTTPS listener presents: the hub's certificate (none yet while the first ACME
/// order is under way: handshakes then fail), or, to a CA checking a challenge, the challenge
/// certificate for the name it asks about.
#[derive(Debug, Default)]
pub struct ServedCertificate {
    current: RwLock<Option<Arc<CertifiedKey>>>,
    /// Challenge certificates by lower-case DNS name, present only while an order waits for
    /// the CA to check them.
    challenges: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl ServedCertificate {
    /// Serves `key` from the start (a certificate from files, or one kept from an earlier run).
    pub fn with(key: CertifiedKey) -> Self {
        let served = ServedCertificate::default();
        served.replace(key);
        served
    }

    /// The certificate served from now on; connections already open keep theirs.
    pub fn replace(&self, key: CertifiedKey) {
        *self.current.write() = Some(Arc::new(key));
    }

    /// The hub's own certificate (not a challenge's), if it has one.
    pub fn leaf(&self) -> Option<CertificateDer<'static>> {
        self.current
            .read()
            .as_ref()
            .and_then(|key| key.cert.first().cloned())
    }

    pub(crate) fn add_challenge(&self, name: &str, key: CertifiedKey) {
        self.challenges
            .write()
            .insert(name.to_ascii_lowercase(), Arc::new(key));
    }

    pub(crate) fn remove_challenge(&self, name: &str) {
        self.challenges.write().remove(&name.to_ascii_lowercase());
    }
}

impl ResolvesServerCert for ServedCertificate {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let checks_a_challenge = hello
            .alpn()
            .is_some_and(|mut offered| offered.any(|protocol| protocol == ACME_TLS_ALPN));
        if checks_a_challenge {
            // No name, or no challenge for it: no certificate, and the handshake fails, as
            // RFC 8737 wants (never the real certificate on an acme-tls/1 connection).
            let name = hello.server_name()?.to_ascii_lowercase();
            return self.challenges.read().get(&name).cloned();
        }
        self.current.read().clone()
    }
}

/// A certificate chain (leaf first) and its private key, checked to belong together.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, rustls::Error> {
    CertifiedKey::from_der(chain, key, &rustls::crypto::ring::default_provider())
}
