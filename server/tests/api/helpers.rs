use app::model::{
    CommandInfo, CommandRequest, CommandStatus, CommandTarget, DashboardSnapshot, DeviceQuery,
    LiveEvent, NewDeviceToken, Reading, Scope,
};
use futures::{SinkExt, StreamExt};
use leptos::server_fn::ServerFn;
use serde::de::DeserializeOwned;
use server::config::ServeArgs;
use server::startup::Application;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

/// How long a test waits for something that should take milliseconds.
pub const PATIENCE: Duration = Duration::from_secs(10);
/// The first user's password in every test server.
pub const ADMIN_PASSWORD: &str = "test admin password";

pub struct TestApp {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>`, or with TLS `https://localhost:<port>`.
    pub base: String,
    /// The raw TCP device listener, when `tcp_listen` is set.
    pub tcp_addr: Option<SocketAddr>,
    /// `/metrics` without sign-in, when `metrics_bind` is set.
    pub metrics_addr: Option<SocketAddr>,
    /// Plain HTTP redirected to HTTPS, when `http_redirect` is set.
    pub redirect_addr: Option<SocketAddr>,
    pub data_dir: TempDir,
    pub stop: CancellationToken,
    /// Signed in as `admin`.
    pub http: reqwest::Client,
    /// The session cookie `http` sends (`iothub_session=…`).
    pub session_cookie: String,
    server: JoinHandle<std::io::Result<()>>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(configure: impl FnOnce(&mut ServeArgs)) -> TestApp {
        Self::spawn_in(tempfile::tempdir().expect("temp dir"), configure).await
    }

    /// Starts a server on an existing data folder (to test restarts).
    pub async fn spawn_in(data_dir: TempDir, configure: impl FnOnce(&mut ServeArgs)) -> TestApp {
        let mut args = ServeArgs::defaults();
        args.http.bind = "127.0.0.1:0".parse().unwrap();
        args.store.data_dir = data_dir.path().to_path_buf();
        args.writes.flush_interval_ms = 20;
        args.accounts.admin_password = Some(ADMIN_PASSWORD.into());
        // Most tests are about what devices do, not how they sign in; the tests of device
        // tokens (auth.rs) turn this off.
        args.devices.allow_tokenless_devices = true;
        configure(&mut args);
        let tls_cert = args
            .tls
            .tls_cert
            .as_ref()
            .map(|path| std::fs::read(path).expect("the test certificate"));
        let app = Application::build(args).await.expect("server starts");
        let addr = app.local_addr();
        let tcp_addr = app.tcp_addr();
        let metrics_addr = app.metrics_addr();
        let redirect_addr = app.redirect_addr();
        let stop = app.shutdown_token();
        let server = tokio::spawn(app.run_until_stopped());
        let base = match &tls_cert {
            None => format!("http://{addr}"),
            Some(_) => format!("https://localhost:{}", addr.port()),
        };
        let no_redirects = client_for(addr, tls_cert.as_deref())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client");
        let session_cookie =
            session_from(&post_login_at(&no_redirects, &base, "admin", ADMIN_PASSWORD).await)
                .expect("the test admin signs in");
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::COOKIE,
            session_cookie.parse().expect("a valid header"),
        );
        // As the dashboard's page sends with every request that changes something.
        headers.insert(
            reqwest::header::ORIGIN,
            base.parse().expect("a valid header"),
        );
        TestApp {
            addr,
            base,
            tcp_addr,
            metrics_addr,
            redirect_addr,
            data_dir,
            stop,
            http: client_for(addr, tls_cert.as_deref())
                .default_headers(headers)
                .build()
                .expect("http client"),
            session_cookie,
            server,
        }
    }

    /// Runs the `iothub` command line on this server's data folder: (succeeded, stdout
    /// trimmed, stderr).
    pub fn cli(&self, args: &[&str], stdin: &str) -> (bool, String, String) {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_iothub"))
            .args(args)
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .env_remove("IOTHUB_DATABASE_URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    /// A user with `role` added through the command line, and a client signed in as them
    /// (sending the dashboard's `Origin`, as its page does).
    pub async fn user_client(&self, name: &str, role: &str) -> reqwest::Client {
        let password = format!("{name}'s password");
        let (ok, _, err) = self.cli(
            &["user", "add", name, "--role", role],
            &format!("{password}\n"),
        );
        assert!(ok, "{err}");
        let cookie = sign_in(self.addr, name, &password)
            .await
            .unwrap_or_else(|status| panic!("{name} signs in: {status}"));
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::COOKIE, cookie.parse().unwrap());
        headers.insert(reqwest::header::ORIGIN, self.base.parse().unwrap());
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .build()
            .unwrap()
    }

    /// A client that sends `Authorization: Bearer <token>` and nothing else of a browser's.
    pub fn bearer_client(token: &str) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .build()
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn device(&self, query: &str) -> Device {
        Device::connect(self.addr, query).await
    }

    /// Creates a device token for `device` through the Tokens page's server function.
    pub async fn create_token(&self, device: &str, label: &str) -> NewDeviceToken {
        self.call::<app::api::CreateDeviceToken, _>(&[("device_id", device), ("label", label)])
            .await
            .expect("token created")
    }

    /// Signs the session `cookie` (a `Cookie` header value) out; the response, unfollowed.
    pub async fn sign_out(&self, cookie: &str) -> reqwest::Response {
        anonymous()
            .post(self.url("/logout"))
            .header(reqwest::header::COOKIE, cookie)
            .send()
            .await
            .expect("logout request")
    }

    /// Calls a server function the way the browser does: POST, form-encoded arguments, JSON back.
    pub async fn call<F: ServerFn, T: DeserializeOwned>(
        &self,
        args: &[(&str, &str)],
    ) -> Result<T, (u16, String)> {
        answer(self.http.post(self.url(F::PATH)).form(args)).await
    }

    /// Calls a server function that takes JSON (`#[server(input = Json)]`).
    pub async fn call_json<F: ServerFn, T: DeserializeOwned>(
        &self,
        args: &serde_json::Value,
    ) -> Result<T, (u16, String)> {
        answer(self.http.post(self.url(F::PATH)).json(args)).await
    }

    /// Sends a command the way the dashboard's form does.
    pub async fn command(
        &self,
        target: CommandTarget,
        variable: &str,
        value: f64,
        duration_ms: Option<u64>,
    ) -> Result<Vec<CommandInfo>, (u16, String)> {
        let request = CommandRequest {
            target,
            variable: variable.into(),
            value,
            duration_ms,
            queue_ms: None,
        };
        self.call_json::<app::api::SendCommand, _>(&serde_json::json!({ "request": request }))
            .await
    }

    /// Waits until command `seq` reaches `status` (as the dashboard sees it).
    pub async fn command_status(&self, seq: u64, status: CommandStatus) -> CommandInfo {
        eventually(&format!("command {seq} {status:?}"), || async {
            let snap = self.dashboard().await;
            snap.commands
                .into_iter()
                .find(|c| c.seq == seq && c.status == status)
        })
        .await
    }

    pub async fn device_summary(&self, id: &str) -> Option<app::model::DeviceSummary> {
        self.dashboard()
            .await
            .devices
            .into_iter()
            .map(|d| d.summary)
            .find(|s| s.id == id)
    }

    /// Waits until the dashboard shows device `id` offline.
    pub async fn offline(&self, id: &str) {
        eventually(&format!("device {id} shows offline"), || async {
            self.device_summary(id)
                .await
                .is_some_and(|s| !s.online)
                .then_some(())
        })
        .await;
    }

    /// The overview's snapshot: every device, sparkline readings, no consoles.
    pub async fn dashboard(&self) -> DashboardSnapshot {
        self.dashboard_of(&Scope::Devices(DeviceQuery::default()))
            .await
    }

    /// A device page's snapshot: that device in detail.
    pub async fn dashboard_for(&self, device: &str) -> DashboardSnapshot {
        self.dashboard_of(&Scope::Device(device.into())).await
    }

    /// The hub's metrics page (`--metrics-listen`), as text.
    pub async fn metrics_text(&self) -> String {
        let address = self.metrics_addr.expect("the metrics listener is on");
        reqwest::get(format!("http://{address}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// `GET path` with the admin session, read as JSON; `None` if it fails or does not parse
    /// (for `eventually`).
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Option<T> {
        self.http
            .get(self.url(path))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()
    }

    /// What the page showing `scope` loads first.
    pub async fn dashboard_of(&self, scope: &Scope) -> DashboardSnapshot {
        self.call_json::<app::api::LoadDashboard, _>(&serde_json::json!({ "scope": scope }))
            .await
            .expect("load_dashboard succeeds")
    }

    pub async fn history(&self, device: &str, limit: u32) -> Vec<Reading> {
        let limit = limit.to_string();
        self.call::<app::api::DeviceHistory, _>(&[
            ("device_id", device),
            ("since_ms", "0"),
            ("limit", &limit),
        ])
        .await
        .expect("device_history succeeds")
    }

    pub async fn live(&self) -> LiveClient {
        self.live_for(None).await
    }

    /// The live stream of a page: the overview (`None`) or a device page.
    pub async fn live_for(&self, focus: Option<&str>) -> LiveClient {
        let scope = match focus {
            Some(device) => Scope::Device(device.into()),
            None => Scope::Devices(DeviceQuery::default()),
        };
        self.live_of(&scope).await
    }

    /// The live stream of the page showing `scope`.
    pub async fn live_of(&self, scope: &Scope) -> LiveClient {
        self.open_live(
            self.http
                .post(self.url(app::api::LiveUpdates::PATH))
                .json(&serde_json::json!({ "scope": scope })),
        )
        .await
    }

    /// The overview's live stream, opened with the session `cookie` (a `Cookie` header value).
    pub async fn live_with_session(&self, cookie: &str) -> LiveClient {
        let request = anonymous()
            .post(self.url(app::api::LiveUpdates::PATH))
            .header(reqwest::header::COOKIE, cookie)
            .header(reqwest::header::ORIGIN, &self.base)
            .json(&serde_json::json!({ "scope": Scope::Devices(DeviceQuery::default()) }));
        self.open_live(request).await
    }

    async fn open_live(&self, request: reqwest::RequestBuilder) -> LiveClient {
        let res = request.send().await.expect("stream opens");
        assert!(
            res.status().is_success(),
            "live stream refused: {}",
            res.status()
        );
        LiveClient {
            body: Box::pin(res.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// Graceful stop, as on SIGTERM; returns the data folder for a restart.
    pub async fn stop(self) -> TempDir {
        self.stop.cancel();
        tokio::time::timeout(PATIENCE, self.server)
            .await
            .expect("server stops in time")
            .expect("server task")
            .expect("server ran cleanly");
        self.data_dir
    }
}

/// A client that does not follow redirects and keeps no cookies: a browser without a session.
pub fn anonymous() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// An HTTP client for a test server; with TLS it trusts only the test certificate and reaches
/// `localhost` (the certificate's name) at `addr`.
pub fn client_for(addr: SocketAddr, tls_cert: Option<&[u8]>) -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder();
    match tls_cert {
        None => builder,
        Some(pem) => builder
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(pem).expect("a PEM certificate"))
            .resolve("localhost", addr),
    }
}

/// Posts the login form over plain HTTP; the response, unfollowed.
pub async fn post_login(
    client: &reqwest::Client,
    addr: SocketAddr,
    user: &str,
    password: &str,
) -> reqwest::Response {
    post_login_at(client, &format!("http://{addr}"), user, password).await
}

pub async fn post_login_at(
    client: &reqwest::Client,
    base: &str,
    user: &str,
    password: &str,
) -> reqwest::Response {
    client
        .post(format!("{base}/login"))
        .form(&[("user", user), ("password", password), ("next", "/")])
        .send()
        .await
        .expect("login request")
}

/// Signs in and returns the session cookie as a `Cookie` header value, or the status.
pub async fn sign_in(addr: SocketAddr, user: &str, password: &str) -> Result<String, u16> {
    session_from(&post_login(&anonymous(), addr, user, password).await)
}

/// The session cookie a login response sets, as a `Cookie` header value, or its status.
fn session_from(res: &reqwest::Response) -> Result<String, u16> {
    server::client::session_cookie(res.headers()).ok_or(res.status().as_u16())
}

/// The body of a successful answer to `request`, as text.
pub async fn body_text(request: reqwest::RequestBuilder) -> String {
    request
        .send()
        .await
        .expect("request sent")
        .error_for_status()
        .expect("a successful answer")
        .text()
        .await
        .expect("a text body")
}

/// Sends a server-function request: the decoded JSON on success, else the status and body.
async fn answer<T: DeserializeOwned>(request: reqwest::RequestBuilder) -> Result<T, (u16, String)> {
    let res = request.send().await.expect("request sent");
    let status = res.status();
    let body = res.text().await.expect("body");
    if status.is_success() {
        Ok(serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}")))
    } else {
        Err((status.as_u16(), body))
    }
}

pub struct Device {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Device {
    /// A device connected over WebSocket to the hub at `addr` (`query`: `?id=7`, or empty).
    pub async fn connect(addr: SocketAddr, query: &str) -> Device {
        let url = format!("ws://{addr}/ws/device{query}");
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("device connects");
        Device { ws }
    }

    pub async fn send(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("device sends");
    }

    pub async fn send_binary(&mut self, bytes: &[u8]) {
        self.ws
            .send(Message::Binary(bytes.to_vec().into()))
            .await
            .expect("device sends");
    }

    /// The next text line from the server, skipping pings.
    pub async fn recv_text(&mut self) -> String {
        loop {
            match tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("a message in time")
            {
                Some(Ok(Message::Text(t))) => return t.to_string(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    }

    /// True if no text line arrives within `wait` (pings are answered and skipped).
    pub async fn silent_for(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return true,
                Ok(Some(Ok(Message::Text(t)))) => {
                    eprintln!("unexpected line: {t}");
                    return false;
                }
                Ok(Some(Ok(_))) => continue,
                Ok(_) => return false,
            }
        }
    }

    /// Waits for the server to close this connection and returns the close reason.
    pub async fn closed(&mut self) -> String {
        loop {
            match tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("closed in time")
            {
                Some(Ok(Message::Close(frame))) => {
                    return frame.map(|f| f.reason.to_string()).unwrap_or_default()
                }
                None | Some(Err(_)) => return String::new(),
                Some(Ok(_)) => continue,
            }
        }
    }
}

type ByteStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// The live stream as a browser receives it.
pub struct LiveClient {
    body: ByteStream,
    buffer: String,
}

impl LiveClient {
    pub async fn next_event(&mut self) -> LiveEvent {
        loop {
            if let Some(end) = self.buffer.find('\n') {
                let line: String = self.buffer.drain(..=end).collect();
                return serde_json::from_str(line.trim_end())
                    .unwrap_or_else(|e| panic!("{e}: {line}"));
            }
            let chunk = tokio::time::timeout(PATIENCE, self.body.next())
                .await
                .expect("live event in time")
                .expect("stream still open")
                .expect("stream readable");
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        }
    }

    /// Skips events until one matches.
    /// The next change of device `id`'s summary.
    pub async fn device_change(&mut self, id: &str) -> app::model::DeviceSummary {
        self.find(|e| match e {
            LiveEvent::Device(d) if d.id == id => Some(d),
            _ => None,
        })
        .await
    }

    pub async fn find<T>(&mut self, mut pick: impl FnMut(LiveEvent) -> Option<T>) -> T {
        loop {
            if let Some(found) = pick(self.next_event().await) {
                return found;
            }
        }
    }

    /// True once the server has ended the stream.
    pub async fn ended(&mut self) -> bool {
        loop {
            match tokio::time::timeout(PATIENCE, self.body.next()).await {
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// Polls `check` until it returns `Some`, or panics after [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The hub binary serving on port 0 with a fresh data folder, stopped when dropped.
pub struct HubProcess {
    child: tokio::process::Child,
    pub addr: SocketAddr,
    _data_dir: tempfile::TempDir,
}

impl HubProcess {
    pub async fn device(&self, query: &str) -> Device {
        Device::connect(self.addr, query).await
    }

    pub async fn start(extra: &[&str]) -> HubProcess {
        let mut args = vec!["--admin-password", ADMIN_PASSWORD];
        args.extend_from_slice(extra);
        HubProcess::start_with(&args).await
    }

    /// Like [`HubProcess::start`], with no `--admin-password` of its own.
    pub async fn start_with(extra: &[&str]) -> HubProcess {
        let data_dir = tempfile::tempdir().unwrap();
        let ready = data_dir.path().join("ready.json");
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_iothub"))
            .args(["serve", "--bind", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data_dir.path())
            .arg("--ready-file")
            .arg(&ready)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let addr = eventually("the hub to be ready", || {
            let ready = ready.clone();
            async move {
                let text = std::fs::read_to_string(&ready).ok()?;
                let json: serde_json::Value = serde_json::from_str(&text).ok()?;
                json["dashboard"]
                    .as_str()?
                    .trim_start_matches("http://")
                    .parse::<SocketAddr>()
                    .ok()
            }
        })
        .await;
        HubProcess {
            child,
            addr,
            _data_dir: data_dir,
        }
    }

    /// Kills the hub (SIGKILL): it has no chance to say or write anything.
    pub async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    /// Resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.id().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

/// A client whose connections come from `from` (any 127.x address reaches this machine).
pub fn client_from(from: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}
