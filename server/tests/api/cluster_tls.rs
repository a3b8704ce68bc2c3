//! Hubs on a NATS server that requires TLS and a password (`--cluster-nats tls://user:pass@…`,
//! `--cluster-nats-ca-file`): linked when both are right, cut off (and saying so) when not.

use crate::cluster::{listening, nats, prefix, shown};
use crate::helpers::TestApp;
use std::path::{Path, PathBuf};

const USER: &str = "hub";
const PASSWORD: &str = "s3cret";

/// A nats-server of the test's own with TLS (a certificate made here for 127.0.0.1) and one
/// user; its port and the certificate's PEM file, which the hubs are told to trust.
struct SecuredNats {
    port: u16,
    dir: tempfile::TempDir,
    _child: tokio::process::Child,
}

impl SecuredNats {
    async fn start() -> SecuredNats {
        let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        std::fs::write(path("cert.pem"), made.cert.pem()).unwrap();
        std::fs::write(path("key.pem"), made.signing_key.serialize_pem()).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "listen: \"127.0.0.1:{port}\"\n\
             jetstream {{ store_dir: {store:?} }}\n\
             tls {{ cert_file: {cert:?}, key_file: {key:?} }}\n\
             authorization {{ user: {USER:?}, password: {PASSWORD:?} }}\n",
            store = path("store"),
            cert = path("cert.pem"),
            key = path("key.pem"),
        );
        std::fs::write(path("nats.conf"), config).unwrap();
        let child = tokio::process::Command::new("/usr/sbin/nats-server")
            .arg("--config")
            .arg(path("nats.conf"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server (apt install nats-server)");
        listening(port).await;
        SecuredNats {
            port,
            dir,
            _child: child,
        }
    }

    fn url(&self, password: &str) -> String {
        format!("tls://{USER}:{password}@127.0.0.1:{}", self.port)
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }
}

async fn hub(url: String, ca: &Path, prefix: &str, id: &str) -> TestApp {
    let (ca, prefix, id) = (ca.to_path_buf(), prefix.to_string(), id.to_string());
    TestApp::spawn_with(move |args| {
        args.cluster.cluster_nats = Some(url);
        args.cluster.cluster_nats_ca_file = Some(ca);
        args.cluster.cluster_prefix = prefix;
        args.cluster.cluster_hub_id = Some(id);
    })
    .await
}

async fn healthz(app: &TestApp) -> String {
    reqwest::get(app.url("/healthz"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn hubs_link_over_tls_with_a_password_and_a_wrong_one_is_cut_off() {
    if nats().is_none() {
        return;
    }
    let nats = SecuredNats::start().await;
    let prefix = prefix();
    let a = hub(nats.url(PASSWORD), &nats.ca(), &prefix, "hub-a").await;
    let b = hub(nats.url(PASSWORD), &nats.ca(), &prefix, "hub-b").await;
    let mut device = a.device("").await;
    device.send("7,1,1.5").await;
    shown(&b, "7", |s| s.online && s.transport.ends_with(" via hub-a")).await;
    assert_eq!(healthz(&b).await, "ok\ncluster: linked as hub hub-b\n");

    // A wrong password: this hub is not let in. It serves its own devices and says it is cut
    // off, and sees nothing of the others.
    let c = hub(nats.url("wrong"), &nats.ca(), &prefix, "hub-c").await;
    let health = healthz(&c).await;
    assert!(
        health.starts_with("ok\ncluster: cut off from NATS as hub hub-c"),
        "{health}"
    );
    assert!(c.dashboard().await.fleet.cut_off);
    assert!(c.device_summary("7").await.is_none());
    a.stop().await;
    b.stop().await;
    c.stop().await;
}

#[tokio::test]
async fn a_credentials_file_that_cannot_be_read_stops_the_start_saying_so() {
    let data = tempfile::tempdir().unwrap();
    let missing = data.path().join("hub.creds");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_iothub"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .args([
            "--cluster-nats",
            "nats://127.0.0.1:1",
            "--cluster-nats-creds",
        ])
        .arg(&missing)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read the NATS credentials file") && stderr.contains("hub.creds"),
        "{stderr}"
    );
}
