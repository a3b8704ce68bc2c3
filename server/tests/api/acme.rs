//! `--acme-domain` against Debian's pebble, the ACME test server, with pebble-challtestsrv as
//! its DNS (every name is 127.0.0.1): a real order, with pebble connecting to the hub's HTTPS
//! port to check the TLS-ALPN-01 challenge, a real certificate served, kept and renewed.
//! Started here for each test; `IOTHUB_TEST_PEBBLE` names the pebble binary (scripts/test.sh
//! sets it; `pebble-challtestsrv` is taken from beside it).

use crate::helpers::ADMIN_PASSWORD;
use rustls::pki_types::{CertificateDer, ServerName};
use server::certificates::renewal::CertificateFacts;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

const PEBBLE_VAR: &str = "IOTHUB_TEST_PEBBLE";
const DOMAIN: &str = "hub.example.test";
/// Long enough for an order with a challenge check on a loaded 2-core machine.
const ISSUANCE: Duration = Duration::from_secs(60);

/// A port nobody listens on now (pebble must be told the hub's port before the hub starts).
/// Taken below Linux's ephemeral range (32768 and up), where every other test's port-0
/// listener lands, so that none of them can take it before the hub or pebble binds it.
fn free_port() -> u16 {
    loop {
        let port = fastrand::u16(20_000..30_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

async fn wait_for_port(port: u16, what: &str) {
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not start listening on port {port}");
}

/// Polls `check` every 200 ms until it returns `Some`, for at most `limit`; on a time-out the
/// panic message ends with `context()` (the hub's log, say).
async fn within<T, F, Fut>(
    limit: Duration,
    what: &str,
    context: impl Fn() -> String,
    mut check: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}; {}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Pebble and its DNS server, killed when dropped.
struct Pebble {
    dir: TempDir,
    _processes: Vec<Child>,
    directory: String,
    management: u16,
    /// Pebble's own HTTPS certificate (made here), which the hub is told to trust.
    https_certificate: PathBuf,
}

impl Pebble {
    /// Pebble checking challenges on `tls_port`, issuing certificates that last
    /// `validity_s` seconds; `None` when `IOTHUB_TEST_PEBBLE` is not set.
    async fn start(tls_port: u16, validity_s: u64) -> Option<Pebble> {
        let Ok(pebble) = std::env::var(PEBBLE_VAR) else {
            eprintln!("{PEBBLE_VAR} is not set: skipping the ACME test");
            return None;
        };
        let challtestsrv = Path::new(&pebble).with_file_name("pebble-challtestsrv");
        let dir = tempfile::tempdir().unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let https_certificate = dir.path().join("pebble.pem");
        let https_key = dir.path().join("pebble-key.pem");
        std::fs::write(&https_certificate, made.cert.pem()).unwrap();
        std::fs::write(&https_key, made.signing_key.serialize_pem()).unwrap();
        let (listen, management, dns, dns_management) =
            (free_port(), free_port(), free_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": https_certificate,
            "privateKey": https_key,
            "httpPort": free_port(),
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "certificateValidityPeriod": validity_s,
        }});
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let log = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
        let dns_server = Command::new(&challtestsrv)
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(log("challtestsrv.log"))
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", challtestsrv.display()));
        let ca = Command::new(&pebble)
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            // No random sleeps before checking, no random nonce refusals, a new challenge
            // for every order (a renewal proves the name again).
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log("pebble.log"))
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{pebble}: {e}"));
        wait_for_port(listen, "pebble").await;
        wait_for_port(management, "pebble's management interface").await;
        Some(Pebble {
            dir,
            _processes: vec![dns_server, ca],
            directory: format!("https://127.0.0.1:{listen}/dir"),
            management,
            https_certificate,
        })
    }

    /// The root that pebble's certificates chain to (a new one every time pebble starts).
    async fn root(&self) -> CertificateDer<'static> {
        let pem = std::fs::read(&self.https_certificate).unwrap();
        let client = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .build()
            .unwrap();
        let url = format!("https://127.0.0.1:{}/roots/0", self.management);
        let pem = client
            .get(url)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .bytes()
            .await
            .unwrap();
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(&pem).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }

    /// How many certificates pebble has issued (from its log).
    fn issued(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("pebble.log"))
            .unwrap_or_default()
            .matches("Issued certificate serial")
            .count()
    }
}

/// The hub binary with `--acme-domain`, on a port chosen beforehand; killed when dropped.
struct AcmeHub {
    _child: Child,
    stderr: PathBuf,
    /// `/metrics` without sign-in.
    metrics: u16,
}

impl AcmeHub {
    async fn start(port: u16, data_dir: &Path, pebble: &Pebble) -> AcmeHub {
        let stderr = data_dir.join(format!("hub-{}.log", fastrand::u32(..)));
        let metrics = free_port();
        // From an earlier run in the same folder.
        let _ = std::fs::remove_file(data_dir.join("ready.json"));
        let child = Command::new(env!("CARGO_BIN_EXE_iothub"))
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--admin-password", ADMIN_PASSWORD])
            .args([
                "--acme-domain",
                DOMAIN,
                "--acme-email",
                "owner@example.test",
            ])
            .args(["--acme-directory", &pebble.directory])
            .arg("--acme-ca-root")
            .arg(&pebble.https_certificate)
            .args(["--metrics-bind", &format!("127.0.0.1:{metrics}")])
            .arg("--ready-file")
            .arg(data_dir.join("ready.json"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut child = child;
        // Wait for the hub's own ready file, not just the port: a port chosen beforehand may
        // have been taken meanwhile (by another test), and then this hub is not listening.
        let ready = data_dir.join("ready.json");
        for _ in 0..300 {
            if ready.exists() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the hub exited ({status}): {}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ready.exists(), "the hub did not get ready");
        AcmeHub {
            _child: child,
            stderr,
            metrics,
        }
    }

    async fn metrics(&self) -> String {
        reqwest::get(format!("http://127.0.0.1:{}/metrics", self.metrics))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// The certificate the hub presents for `DOMAIN`, if it presents one that chains to `root`.
async fn served_certificate(port: u16, root: &CertificateDer<'static>) -> Option<CertificateFacts> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let name = ServerName::try_from(DOMAIN).unwrap();
    let tls = connector.connect(name, tcp).await.ok()?;
    let leaf = tls.get_ref().1.peer_certificates()?.first()?.clone();
    Some(CertificateFacts::of(&leaf).unwrap())
}

/// An HTTPS client that trusts only `root` and reaches `DOMAIN` at the hub.
fn https_client(port: u16, root: &CertificateDer<'static>) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_der(root.as_ref()).unwrap())
        .resolve(DOMAIN, SocketAddr::from(([127, 0, 0, 1], port)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_certificate_is_obtained_served_and_kept_across_a_restart() {
    let port = free_port();
    let Some(pebble) = Pebble::start(port, 90 * 24 * 3600).await else {
        return;
    };
    let root = pebble.root().await;
    let data = tempfile::tempdir().unwrap();
    let hub = AcmeHub::start(port, data.path(), &pebble).await;
    let first = within(
        ISSUANCE,
        "a certificate from pebble",
        || format!("hub: {}\npebble: {}", hub.log(), pebble.log()),
        || served_certificate(port, &root),
    )
    .await;
    assert_eq!(first.names, vec![DOMAIN.to_string()], "{}", hub.log());
    assert!(
        hub.log().contains("new certificate from the CA"),
        "{}",
        hub.log()
    );

    // Served for real: the dashboard over HTTPS, for the certificate's name.
    let client = https_client(port, &root);
    let page = client
        .get(format!("https://{DOMAIN}:{port}/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let metrics = hub.metrics().await;
    let expiry = format!("iothub_tls_certificate_expiry_seconds {}", first.not_after);
    assert!(metrics.contains(&expiry), "{metrics}");

    // Kept in the data folder, the key readable by the hub's user only.
    let acme = data.path().join("acme");
    let key_mode = std::fs::metadata(acme.join("certificate-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    assert!(std::fs::read_dir(&acme).unwrap().any(|entry| entry
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("account-")));
    assert_eq!(pebble.issued(), 1);

    // A restart serves the kept certificate at once, and orders nothing.
    drop(hub);
    let hub = AcmeHub::start(port, data.path(), &pebble).await;
    let again = within(
        Duration::from_secs(5),
        "the kept certificate",
        || format!("hub: {}\npebble: {}", hub.log(), pebble.log()),
        || served_certificate(port, &root),
    )
    .await;
    assert_eq!(again.serial, first.serial);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(pebble.issued(), 1, "{}", hub.log());
    assert!(
        hub.log()
            .contains("serving the certificate kept in the data folder"),
        "{}",
        hub.log()
    );
}

#[tokio::test]
async fn a_certificate_is_renewed_while_the_hub_runs() {
    let port = free_port();
    // Twelve seconds of life: renewed with a third of it left, about eight seconds in.
    let Some(pebble) = Pebble::start(port, 12).await else {
        return;
    };
    let root = pebble.root().await;
    let data = tempfile::tempdir().unwrap();
    let hub = AcmeHub::start(port, data.path(), &pebble).await;
    let first = within(
        ISSUANCE,
        "a certificate from pebble",
        || format!("hub: {}\npebble: {}", hub.log(), pebble.log()),
        || served_certificate(port, &root),
    )
    .await;
    let renewed = within(
        ISSUANCE,
        "a renewed certificate",
        || format!("hub: {}\npebble: {}", hub.log(), pebble.log()),
        || async {
            served_certificate(port, &root)
                .await
                .filter(|facts| facts.serial != first.serial)
        },
    )
    .await;
    assert!(renewed.not_after > first.not_after, "{}", hub.log());
    // The renewal is what the data folder keeps now.
    let kept = std::fs::read(data.path().join("acme/certificate.pem")).unwrap();
    use rustls::pki_types::pem::PemObject;
    let kept = CertificateDer::pem_slice_iter(&kept)
        .next()
        .unwrap()
        .unwrap();
    let kept = CertificateFacts::of(&kept).unwrap();
    assert_ne!(kept.serial, first.serial, "{}", hub.log());
    assert!(pebble.issued() >= 2);
}

#[tokio::test]
async fn a_ca_that_cannot_be_reached_leaves_the_hub_running() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let stderr = dir.path().join("hub.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_iothub"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--admin-password", ADMIN_PASSWORD])
        .args(["--acme-domain", DOMAIN])
        .args([
            "--acme-directory",
            &format!("https://127.0.0.1:{}/dir", free_port()),
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for_port(port, "the hub").await;
    within(
        Duration::from_secs(10),
        "the failure in the log",
        String::new,
        || async {
            std::fs::read_to_string(&stderr)
                .unwrap()
                .contains("getting a certificate failed")
                .then_some(())
        },
    )
    .await;
    let log = std::fs::read_to_string(&stderr).unwrap();
    assert!(log.contains("retry_in=120s"), "{log}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the hub is still running: {log}"
    );
    // Until there is a certificate, a TLS handshake fails rather than showing a wrong one.
    let root = rcgen::generate_simple_self_signed(vec![DOMAIN.into()]).unwrap();
    assert!(served_certificate(port, root.cert.der()).await.is_none());
}
