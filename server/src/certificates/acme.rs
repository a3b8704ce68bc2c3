//! `--acme-domain`: a certificate from Let's Encrypt (or any ACME CA, RFC 8555) without
//! manual steps. The CA checks that the hub answers for the name with TLS-ALPN-01 (RFC 8737)
//! on the HTTPS port itself, so nothing else has to listen (no port 80). The certificate is
//! kept in the data folder, served from memory, and renewed in the background well before it
//! ends; a failed attempt is retried with back-off and never stops the hub.

use super::files::{AcmeFiles, FilesError};
use super::renewal::{self, CertificateFacts};
use super::served::{certified_key, ServedCertificate};
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Let's Encrypt, the default CA.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// How long the CA may take to check the challenges, and then to issue.
const ORDER_PATIENCE: Duration = Duration::from_secs(120);

/// A name for `--acme-domain`: a DNS name (letters, digits, hyphens, dots), lower-cased. Not
/// an IP address and not a wildcard: TLS-ALPN-01 proves neither.
pub fn parse_domain(raw: &str) -> Result<String, String> {
    let name = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err(format!(
            "{raw:?} is an IP address; a certificate authority needs a DNS name"
        ));
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.len() > 253 || name.split('.').count() < 2 || !name.split('.').all(label_ok) {
        return Err(format!(
            "{raw:?} is not a DNS name like hub.example.org (wildcards cannot be proven over TLS-ALPN-01)"
        ));
    }
    Ok(name)
}

#[derive(Debug, Clone)]
pub struct AcmeSettings {
    /// The names the certificate is for (the first one names it in the log).
    pub domains: Vec<String>,
    pub email: Option<String>,
    /// The CA's directory URL.
    pub directory: String,
    /// A CA certificate to trust for the directory's own HTTPS instead of the public ones.
    pub ca_root: Option<PathBuf>,
    pub data_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("the CA at {directory}: {source}")]
    Ca {
        directory: String,
        source: instant_acme::Error,
    },
    #[error(
        "the CA did not accept that this hub answers for {name} ({status:?}): is port 443 of \
         {name} forwarded to this hub's HTTPS port?"
    )]
    NotAuthorized {
        name: String,
        status: AuthorizationStatus,
    },
    #[error("the CA offers no TLS-ALPN-01 challenge for {0}, the only kind this hub answers")]
    NoTlsAlpnChallenge(String),
    #[error("the order ended {status:?} instead of ready{}", problem.as_ref().map(|p| format!(": {p}")).unwrap_or_default())]
    OrderFailed {
        status: OrderStatus,
        problem: Option<String>,
    },
    #[error("making a key or a certificate request: {0}")]
    Key(#[from] rcgen::Error),
    #[error("the certificate from the CA cannot be used: {0}")]
    Unusable(String),
    #[error(transparent)]
    Files(#[from] FilesError),
}

impl AcmeSettings {
    fn files(&self) -> AcmeFiles {
        AcmeFiles::in_data_dir(&self.data_dir)
    }

    fn ca(&self) -> impl Fn(instant_acme::Error) -> AcmeError + '_ {
        move |source| AcmeError::Ca {
            directory: self.directory.clone(),
            source,
        }
    }
}

/// The certificate kept from an earlier run, if it is for every configured name and has not
/// ended: served at once, so a restart does not wait for (or spend) a new order.
pub fn kept(settings: &AcmeSettings) -> Option<(CertifiedKey, CertificateFacts)> {
    let (chain, key) = match settings.files().read_certificate() {
        Ok(Some(pair)) => pair,
        Ok(None) => return None,
        Err(err) => {
            tracing::warn!(%err, "cannot read the kept certificate; asking for a new one");
            return None;
        }
    };
    match usable(&chain, &key) {
        Ok((certified, facts)) => {
            let now = chrono::Utc::now().timestamp();
            if !facts.covers(&settings.domains) {
                tracing::info!(names = ?facts.names, "the kept certificate is for other names; asking for a new one");
                None
            } else if facts.not_after <= now {
                tracing::info!("the kept certificate has ended; asking for a new one");
                None
            } else {
                Some((certified, facts))
            }
        }
        Err(err) => {
            tracing::warn!(%err, "the kept certificate cannot be used; asking for a new one");
            None
        }
    }
}

/// Obtains a certificate when there is none, renews it when it is due, until `stop`.
pub async fn keep_fresh(
    settings: AcmeSettings,
    served: Arc<ServedCertificate>,
    mut held: Option<CertificateFacts>,
    stop: CancellationToken,
) {
    if let Some(facts) = &held {
        record_expiry(facts);
    }
    let mut account = None;
    let mut failures = 0;
    loop {
        let wait = if failures > 0 {
            renewal::retry_after(failures)
        } else {
            held.as_ref().map_or(Duration::ZERO, |facts| {
                renewal::until(facts.renew_at(), chrono::Utc::now().timestamp())
            })
        };
        if !wait.is_zero() {
            tracing::debug!(?wait, "next certificate order");
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        let attempt = async {
            if account.is_none() {
                account = Some(open_account(&settings).await?);
            }
            let account = account.as_ref().expect("opened just above");
            obtain(account, &settings, &served).await
        };
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            result = attempt => result,
        };
        match result {
            Ok((certified, facts)) => {
                served.replace(certified);
                metrics::gauge!("iothub_tls_certificate_expiry_seconds")
                    .set(facts.not_after as f64);
                tracing::info!(
                    names = ?facts.names,
                    serial = %facts.serial,
                    valid_until = %chrono::DateTime::from_timestamp(facts.not_after, 0).unwrap_or_default(),
                    "new certificate from the CA, served from now on"
                );
                held = Some(facts);
                failures = 0;
            }
            Err(err) => {
                failures += 1;
                tracing::warn!(
                    %err,
                    retry_in = ?renewal::retry_after(failures),
                    "getting a certificate failed"
                );
            }
        }
    }
}

fn record_expiry(facts: &CertificateFacts) {
    metrics::gauge!(crate::metrics::TLS_CERTIFICATE_EXPIRY).set(facts.not_after as f64);
}

/// The ACME account: the one kept for this CA, else a new one (kept from then on).
async fn open_account(settings: &AcmeSettings) -> Result<Account, AcmeError> {
    let builder = match &settings.ca_root {
        Some(root) => Account::builder_with_root(root),
        None => Account::builder(),
    }
    .map_err(settings.ca())?;
    let files = settings.files();
    if let Some(credentials) = files.read_account(&settings.directory)? {
        return builder
            .from_credentials(credentials)
            .await
            .map_err(settings.ca());
    }
    let contact = settings
        .email
        .as_ref()
        .map(|email| format!("mailto:{email}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder
        .create(
            &NewAccount {
                contact: &contacts,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            settings.directory.clone(),
            None,
        )
        .await
        .map_err(settings.ca())?;
    files.write_account(&settings.directory, &credentials)?;
    tracing::info!(directory = %settings.directory, "created an ACME account");
    Ok(account)
}

/// One order, from the first request to the certificate kept on disk.
async fn obtain(
    account: &Account,
    settings: &AcmeSettings,
    served: &ServedCertificate,
) -> Result<(CertifiedKey, CertificateFacts), AcmeError> {
    let ca = settings.ca();
    let identifiers: Vec<Identifier> = settings
        .domains
        .iter()
        .map(|domain| Identifier::Dns(domain.clone()))
        .collect();
    tracing::info!(names = ?settings.domains, directory = %settings.directory, "asking the CA for a certificate");
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(&ca)?;
    // The challenge certificates are served only while this order needs them.
    let mut answering = Challenges {
        served,
        names: Vec::new(),
    };
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization.map_err(&ca)?;
        let name = authorization.identifier().to_string();
        match authorization.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            status => return Err(AcmeError::NotAuthorized { name, status }),
        }
        let mut challenge = authorization
            .challenge(ChallengeType::TlsAlpn01)
            .ok_or_else(|| AcmeError::NoTlsAlpnChallenge(name.clone()))?;
        let key_authorization = challenge.key_authorization();
        answering.add(
            &name,
            challenge_certificate(&name, key_authorization.digest().as_ref())?,
        );
        challenge.set_ready().await.map_err(&ca)?;
    }
    let patience = RetryPolicy::new().timeout(ORDER_PATIENCE);
    let status = order.poll_ready(&patience).await.map_err(&ca)?;
    if status != OrderStatus::Ready {
        let problem = order.state().error.as_ref().map(ToString::to_string);
        return Err(AcmeError::OrderFailed { status, problem });
    }
    drop(answering);

    let key = rcgen::KeyPair::generate()?;
    let mut request = rcgen::CertificateParams::new(settings.domains.clone())?;
    request.distinguished_name = rcgen::DistinguishedName::new();
    let request = request.serialize_request(&key)?;
    order.finalize_csr(request.der()).await.map_err(&ca)?;
    let chain = order.poll_certificate(&patience).await.map_err(&ca)?;
    let key = key.serialize_pem();
    let usable = usable(&chain, &key)?;
    settings.files().write_certificate(&chain, &key)?;
    Ok(usable)
}

/// A PEM chain and key as rustls serves them, with the facts the renewal needs.
fn usable(chain: &str, key: &str) -> Result<(CertifiedKey, CertificateFacts), AcmeError> {
    let unusable = |err: &dyn std::fmt::Display| AcmeError::Unusable(err.to_string());
    let chain = CertificateDer::pem_slice_iter(chain.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| unusable(&err))?;
    let leaf = chain
        .first()
        .ok_or_else(|| AcmeError::Unusable("no certificate in the chain".into()))?;
    let facts = CertificateFacts::of(leaf).map_err(|err| unusable(&err))?;
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|err| unusable(&err))?;
    let certified = certified_key(chain, key).map_err(|err| unusable(&err))?;
    Ok((certified, facts))
}

/// The self-signed certificate that answers a TLS-ALPN-01 challenge for `name`: it carries
/// the SHA-256 digest of the key authorization in the critical acmeIdentifier extension.
fn challenge_certificate(name: &str, digest: &[u8]) -> Result<CertifiedKey, AcmeError> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()])?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let certificate = params.self_signed(&key)?;
    let key = PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|err| AcmeError::Unusable(err.to_string()))?;
    // Not `certified_key`: its check that key and certificate match parses the certificate
    // with webpki, which refuses the critical extension it does not know.
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|err| AcmeError::Unusable(err.to_string()))?;
    Ok(CertifiedKey::new(vec![certificate.der().clone()], signing))
}

/// The challenge certificates of one order; dropping it stops serving them (also when the
/// order fails half-way).
struct Challenges<'a> {
    served: &'a ServedCertificate,
    names: Vec<String>,
}

impl Challenges<'_> {
    fn add(&mut self, name: &str, key: CertifiedKey) {
        self.served.add_challenge(name, key);
        self.names.push(name.to_string());
    }
}

impl Drop for Challenges<'_> {
    fn drop(&mut self) {
        for name in &self.names {
            self.served.remove_challenge(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_dns_names_lower_cased() {
        assert_eq!(parse_domain("Hub.Example.org.").unwrap(), "hub.example.org");
        for bad in [
            "192.0.2.1",
            "::1",
            "*.example.org",
            "localhost",
            "a..b",
            "-a.example",
            "a b.example",
            "",
        ] {
            assert!(parse_domain(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_challenge_certificate_is_for_the_name_and_carries_the_digest() {
        let digest = [7u8; 32];
        let certified = challenge_certificate("hub.example.org", &digest).unwrap();
        let der = certified.cert[0].clone();
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        let acme_identifier =
            x509_parser::oid_registry::Oid::from(&[1, 3, 6, 1, 5, 5, 7, 1, 31]).unwrap();
        let extension = parsed
            .extensions()
            .iter()
            .find(|e| e.oid == acme_identifier)
            .expect("the acmeIdentifier extension");
        assert!(extension.critical);
        // An OCTET STRING of the 32 digest bytes.
        assert_eq!(&extension.value[2..], &digest);
        assert_eq!(
            CertificateFacts::of(&der).unwrap().names,
            vec!["hub.example.org".to_string()]
        );
    }

    #[test]
    fn a_certificate_and_a_key_that_do_not_belong_together_are_refused() {
        let one = rcgen::generate_simple_self_signed(vec!["a.example".into()]).unwrap();
        let other = rcgen::generate_simple_self_signed(vec!["a.example".into()]).unwrap();
        assert!(usable(&one.cert.pem(), &one.signing_key.serialize_pem()).is_ok());
        let err = usable(&one.cert.pem(), &other.signing_key.serialize_pem()).unwrap_err();
        assert!(matches!(err, AcmeError::Unusable(_)), "{err}");
    }
}
