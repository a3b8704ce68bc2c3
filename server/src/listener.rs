//! Accepting connections: optional TLS (rustls), and the limits that apply before any request
//! is read — connections per client address, the size of a request head, how long a client may
//! take to send it (which also closes idle keep-alive connections), how long a TLS handshake may
//! take.
//!
//! `axum::serve` offers none of these knobs, so this is its loop written out with hyper's
//! HTTP/1.1 connection builder. HTTP/1.1 only: browsers and devices all speak it, and WebSocket
//! upgrades are HTTP/1.1.

use crate::certificates::{self, ServedCertificate};
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use parking_lot::{Mutex, MutexGuard};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// How long a graceful stop waits for open HTTP connections (device sockets and live streams
/// end themselves on the same signal; this bounds a client that does not let go).
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Most open connections from one address. Connections from this machine (127.0.0.1, ::1)
    /// are not counted: the bundled simulator and the benchmarks open thousands, and a reverse
    /// proxy on this machine forwards everyone's (it should do the limiting itself).
    pub max_connections_per_ip: usize,
    /// Largest request head (request line and headers); beyond it hyper answers 431.
    pub max_header_bytes: usize,
    /// Time a client has to send a complete request head, and the longest a kept-alive
    /// connection may sit idle between requests.
    pub header_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    /// Open connections in all, shared with the raw TCP device listener.
    pub cap: ConnectionCap,
}

/// The most connections open at once, across listeners (`--max-connections`): past it, new
/// ones are closed as they come, so that a flood of idle connections runs into this limit
/// rather than the process's open-file limit (which would stop the store and the logs too).
#[derive(Debug, Clone)]
pub struct ConnectionCap {
    open: Arc<tokio::sync::Semaphore>,
    max: usize,
}

impl ConnectionCap {
    pub fn new(max: usize) -> Self {
        ConnectionCap {
            open: Arc::new(tokio::sync::Semaphore::new(max)),
            max,
        }
    }

    /// A place for one more connection, if there is one; held as long as the connection.
    pub(crate) fn take(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let permit = self.open.clone().try_acquire_owned().ok();
        if permit.is_none() {
            tracing::debug!(
                limit = self.max,
                "connection refused: too many open connections"
            );
        }
        permit
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificate file {path}: {source}")]
    Certificate {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error(
        "the certificate file {0} holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)"
    )]
    NoCertificate(PathBuf),
    #[error(
        "cannot read a private key from {path} (expected PEM: PKCS#8, PKCS#1 or SEC1): {source}"
    )]
    Key {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("the certificate and key cannot be used together: {0}")]
    Config(#[from] rustls::Error),
}

/// The server's TLS set-up, and the certificate it serves (which clients on this machine pin,
/// and which `--acme-domain` replaces when it renews).
#[derive(Debug, Clone)]
pub struct Tls {
    pub server: Arc<rustls::ServerConfig>,
    pub served: Arc<ServedCertificate>,
}

/// The certificates in a PEM file, at least one.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Certificate {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_path_buf()));
    }
    Ok(certs)
}

/// A TLS configuration from a PEM certificate chain (leaf first) and its private key.
pub fn load_tls(cert_pem: &Path, key_pem: &Path) -> Result<Tls, TlsError> {
    let certs = read_certificates(cert_pem)?;
    let key = PrivateKeyDer::from_pem_file(key_pem).map_err(|source| TlsError::Key {
        path: key_pem.to_path_buf(),
        source,
    })?;
    let served = ServedCertificate::with(certificates::certified_key(certs, key)?);
    serving(Arc::new(served), false)
}

/// A TLS configuration that serves whatever `served` holds at each handshake; with
/// `acme_challenges`, it also answers ACME TLS-ALPN-01 challenges (the connection is closed
/// after such a handshake, see [`serve`]).
pub fn serving(served: Arc<ServedCertificate>, acme_challenges: bool) -> Result<Tls, TlsError> {
    // The provider is named here rather than installed process-wide: ring, which builds
    // without cmake or a C++ toolchain.
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_cert_resolver(served.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if acme_challenges {
        config
            .alpn_protocols
            .push(certificates::ACME_TLS_ALPN.to_vec());
    }
    Ok(Tls {
        server: Arc::new(config),
        served,
    })
}

/// Open connections per client address (shared with the raw TCP device listener).
#[derive(Clone, Default)]
pub(crate) struct ConnectionCounts {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One counted connection; dropping it gives the slot back.
pub(crate) struct Slot {
    counts: ConnectionCounts,
    ip: IpAddr,
}

impl ConnectionCounts {
    /// A slot for a connection from `ip`, or `None` when it has `max` already. Connections
    /// from this machine are not counted (`Some(None)`).
    pub(crate) fn take_unless_local(&self, ip: IpAddr, max: usize) -> Option<Option<Slot>> {
        if is_local(ip) {
            Some(None)
        } else {
            self.take(ip, max).map(Some)
        }
    }

    fn take(&self, ip: IpAddr, max: usize) -> Option<Slot> {
        let ip = crate::address::client_network(ip);
        let mut open = self.lock();
        let count = open.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Slot {
            counts: self.clone(),
            ip,
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.open.lock()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.counts.lock();
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// A connection's stream together with its place in the count: the place is held as long as
/// the socket is open, which for a WebSocket is long after hyper has handed it over.
struct Counted<S> {
    inner: S,
    _slot: Option<Slot>,
    _place: tokio::sync::OwnedSemaphorePermit,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The connection is from this machine (not counted against the per-address limit).
fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4 == std::net::Ipv4Addr::LOCALHOST,
        IpAddr::V6(v6) => {
            v6 == std::net::Ipv6Addr::LOCALHOST
                || v6.to_ipv4_mapped() == Some(std::net::Ipv4Addr::LOCALHOST)
        }
    }
}

/// The next connection, or `None` once `stop` is cancelled.
pub(crate) async fn next_connection(
    listener: &TcpListener,
    stop: &CancellationToken,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return None,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => return Some(accepted),
                Err(err) => {
                    // Out of file descriptors and the like: keep serving the connections we
                    // have, and try again shortly.
                    tracing::warn!(%err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then waits (at most
/// [`DRAIN_LIMIT`]) for open connections to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: ListenerConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let connections = TaskTracker::new();
    let counts = ConnectionCounts::default();
    let acceptor = config.tls.clone().map(TlsAcceptor::from);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .max_buf_size(config.max_header_bytes)
        .keep_alive(true);
    let mut refused_logged = false;
    loop {
        let Some((tcp, remote)) = next_connection(&listener, &shutdown).await else {
            break;
        };
        let Some(place) = config.cap.take() else {
            drop(tcp);
            continue;
        };
        let slot = match counts.take_unless_local(remote.ip(), config.max_connections_per_ip) {
            Some(slot) => slot,
            None => {
                // The first refusal is a warning, later ones debug: an attacker must not
                // be able to flood the log either.
                if !refused_logged {
                    tracing::warn!(%remote, limit = config.max_connections_per_ip, "too many connections from one address; refusing more");
                    refused_logged = true;
                } else {
                    tracing::debug!(%remote, "connection refused: per-address limit");
                }
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut request: axum::http::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(remote));
                request
            },
        ));
        let http = http.clone();
        let acceptor = acceptor.clone();
        let handshake_timeout = config.tls_handshake_timeout;
        let stop = shutdown.clone();
        let tcp = Counted {
            inner: tcp,
            _slot: slot,
            _place: place,
        };
        connections.spawn(async move {
            let result = match acceptor {
                None => serve_connection(&http, TokioIo::new(tcp), service, stop).await,
                Some(acceptor) => {
                    let Some(tls) = handshake(&acceptor, tcp, remote, handshake_timeout).await
                    else {
                        return;
                    };
                    if tls.get_ref().1.alpn_protocol() == Some(certificates::ACME_TLS_ALPN) {
                        // A CA checking a challenge: the handshake was all it wanted (RFC
                        // 8737 §3); no HTTP on this connection.
                        tracing::debug!(%remote, "answered an ACME TLS-ALPN-01 check");
                        return;
                    }
                    serve_connection(&http, TokioIo::new(tls), service, stop).await
                }
            };
            if let Err(err) = result {
                // Clients hanging up, timeouts, malformed requests: routine on the internet.
                tracing::debug!(%remote, %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(DRAIN_LIMIT, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open after {DRAIN_LIMIT:?}; stopping anyway");
    }
    Ok(())
}

/// Serves one connection; when `stop` is cancelled, finishes the request in flight and closes.
async fn serve_connection<I, S>(
    http: &hyper::server::conn::http1::Builder,
    io: I,
    service: S,
    stop: CancellationToken,
) -> hyper::Result<()>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming> + Send,
    S::Future: Send,
    S::ResBody: Send + 'static,
    <S::ResBody as hyper::body::Body>::Data: Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connection = http.serve_connection(io, service).with_upgrades();
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => result,
        _ = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    }
}

async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: Counted<TcpStream>,
    remote: SocketAddr,
    limit: Duration,
) -> Option<tokio_rustls::server::TlsStream<Counted<TcpStream>>> {
    match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(err)) => {
            tracing::debug!(%remote, %err, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%remote, "TLS handshake timed out");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_counted_per_address_and_given_back() {
        let counts = ConnectionCounts::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = counts.take(a, 2).unwrap();
        let _second = counts.take(a, 2).unwrap();
        assert!(counts.take(a, 2).is_none());
        assert!(
            counts.take(b, 2).is_some(),
            "other addresses are not affected"
        );
        drop(first);
        assert!(counts.take(a, 2).is_some());
        assert!(is_local("127.0.0.1".parse().unwrap()));
        assert!(is_local("::1".parse().unwrap()));
        assert!(!is_local("127.0.0.2".parse().unwrap()));
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn certificates_and_keys_are_loaded_or_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert_pem = write(dir.path(), "cert.pem", &cert.cert.pem());
        let key_pem = write(dir.path(), "key.pem", &cert.signing_key.serialize_pem());
        assert!(load_tls(&cert_pem, &key_pem).is_ok());

        let missing = dir.path().join("missing.pem");
        let err = load_tls(&missing, &key_pem).unwrap_err().to_string();
        assert!(err.contains("missing.pem"), "{err}");
        let garbage = write(dir.path(), "garbage.pem", "not a certificate");
        let err = load_tls(&garbage, &key_pem).unwrap_err().to_string();
        assert!(err.contains("no certificate"), "{err}");
        let err = load_tls(&cert_pem, &cert_pem).unwrap_err().to_string();
        assert!(err.contains("private key"), "{err}");
        let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let other_key = write(dir.path(), "other.pem", &other.signing_key.serialize_pem());
        assert!(
            load_tls(&cert_pem, &other_key).is_err(),
            "a key that does not match the certificate"
        );
    }
}
