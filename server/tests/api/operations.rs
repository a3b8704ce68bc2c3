//! Running it for real: the health check, backups of a running hub, JSON logs without secrets.

use crate::helpers::{anonymous, body_text, eventually, sign_in, HubProcess, TestApp};
use app::model::NewDeviceToken;
use leptos::server_fn::ServerFn;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn the_health_check_is_public_and_says_only_ok() {
    let app = TestApp::spawn().await;
    let res = anonymous().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "ok\n");
    app.stop().await;
}

/// The value of a metric line (`name{labels} value`) in Prometheus text.
fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_what_happens_and_need_a_session_or_their_own_address() {
    let app = TestApp::spawn_with(|args| {
        args.http.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let mut device = app.device("?id=metrics-7").await;
    device.send("metrics-7,1,2").await;
    device.send("metrics-7,oops").await;
    assert!(device.recv_text().await.starts_with("error:"));
    let sent = app
        .command(
            app::model::CommandTarget::Device("metrics-7".into()),
            "LED",
            1.0,
            None,
        )
        .await
        .unwrap();
    let _command = device.recv_text().await;
    device.send(&format!("ack={}", sent[0].seq)).await;
    app.command_status(sent[0].seq, app::model::CommandStatus::Acked)
        .await;
    let _live = app.live().await;

    let res = anonymous().get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(
        res.status(),
        401,
        "the dashboard's /metrics needs a session"
    );
    let text = body_text(app.http.get(app.url("/metrics"))).await;
    // Counters are process-wide (other tests' servers count too): at least ours.
    assert!(
        metric(&text, "iothub_readings_total").unwrap() >= 1.0,
        "{text}"
    );
    assert!(metric(&text, "iothub_device_errors_total").unwrap() >= 1.0);
    assert!(metric(&text, "iothub_commands_total{status=\"acked\"}").unwrap() >= 1.0);
    assert!(metric(&text, "iothub_devices_online").unwrap() >= 1.0);
    assert!(metric(&text, "iothub_live_subscribers").unwrap() >= 1.0);
    assert!(text.contains("iothub_store_queue_depth"));
    eventually("a store flush is timed", || async {
        let metrics = format!("http://{}/metrics", app.metrics_addr.unwrap());
        let text = body_text(anonymous().get(metrics)).await;
        text.contains("iothub_store_flush_seconds").then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_running_hub_is_backed_up_completely() {
    let app = TestApp::spawn().await;
    let mut device = app.device("?id=7").await;
    for i in 0..50 {
        device.send(&format!("7,{i},{i}.5")).await;
    }
    eventually("50 readings stored", || async {
        (app.history("7", 100).await.len() == 50).then_some(())
    })
    .await;
    let copy_dir = tempfile::tempdir().unwrap();
    let copy = copy_dir.path().join("backup.db");
    let backup = |destination: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_iothub"))
            .arg("backup")
            .arg(destination)
            .arg("--data-dir")
            .arg(app.data_dir.path())
            .env_remove("IOTHUB_DATABASE_URL")
            .output()
            .unwrap()
    };
    // While the hub runs and the device is still connected.
    let out = backup(&copy);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The copy opens as a store of its own and holds every value.
    let store = server::storage::Store::open(server::storage::StoreConfig {
        database: server::storage::Database::Sqlite(copy.clone()),
        flush_interval: std::time::Duration::from_secs(1),
        flush_rows: 1,
    })
    .await
    .unwrap();
    let readings = store.history("7", 0, 100).await.unwrap();
    assert_eq!(readings.len(), 50);
    assert!(
        readings.iter().all(|r| r.values.len() == 2),
        "50 readings of two values each"
    );
    assert_eq!(store.user_count().await.unwrap(), 1);
    store.close().await;
    let again = backup(&copy);
    assert!(
        !again.status.success(),
        "an existing file is not overwritten"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    app.stop().await;
}

#[tokio::test]
async fn json_logs_tell_connects_and_disconnects_and_keep_secrets_out() {
    let data_dir = tempfile::tempdir().unwrap();
    let password = "a very secret password";
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_iothub"))
        .args(["serve", "--bind", "127.0.0.1:0", "--log-format", "json"])
        .args(["--admin-password", password])
        .arg("--data-dir")
        .arg(data_dir.path())
        .env("RUST_LOG", "debug,sqlx=warn,hyper=info,tungstenite=info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    let addr = loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .expect("the server logs its address");
        let found = line
            .split("listening on http://")
            .nth(1)
            .map(|rest| rest.split('"').next().unwrap_or_default().to_string());
        log.push(line);
        if let Some(addr) = found {
            break addr;
        }
    };
    let base = format!("http://{addr}");
    let session = server::client::sign_in(&base.parse().unwrap(), "admin", password)
        .await
        .unwrap();
    let _refused = server::client::sign_in(&base.parse().unwrap(), "admin", "wrong guess").await;
    let created: NewDeviceToken = reqwest::Client::new()
        .post(format!("{base}{}", app::api::CreateDeviceToken::PATH))
        .header("cookie", &session)
        .header("origin", &base)
        .form(&[("device_id", "7"), ("label", "")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws/device?token={}", created.secret))
            .await
            .unwrap();
    use futures::SinkExt;
    ws.send("7,1,23.5".into()).await.unwrap();
    ws.close(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A graceful stop, then everything it logged.
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await
    {
        log.push(line);
    }
    let _ = child.wait().await;

    let events: Vec<serde_json::Value> = log
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let message = |e: &serde_json::Value| e["fields"]["message"].as_str().unwrap_or("").to_string();
    assert!(events.iter().any(|e| message(e) == "device connected"));
    let gone = events
        .iter()
        .find(|e| message(e) == "device disconnected")
        .expect("a line for the disconnect");
    assert_eq!(gone["fields"]["reason"], "closed by the device");
    assert!(events.iter().any(|e| message(e) == "failed sign-in"));
    let session_id = session.trim_start_matches("iothub_session=");
    for secret in [password, &created.secret[4..], session_id] {
        assert!(
            !log.iter().any(|line| line.contains(secret)),
            "a secret reached the log"
        );
    }
}

/// Runs `iothub` with `args` and `env`; (success, stdout, stderr).
fn iothub(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_iothub"));
    command.args(args).env("RUST_BACKTRACE", "0");
    for name in [
        "IOTHUB_CONFIG",
        "IOTHUB_MAX_FIELDS",
        "IOTHUB_RETENTION_DAYS",
        "IOTHUB_BIND",
    ] {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_config_file_sits_under_the_environment_and_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        r#"
bind = "127.0.0.1:4000"
max-fields = 10
retention_days = 5
admin-password = "pw-secret-xyz"
allow-tokenless-devices = true
default-fields = ["speed", "heading"]
database-url = "postgres://hub:db-secret-xyz@db.lan/iothub"
"#,
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let (ok, shown, err) = iothub(
        &[
            "serve",
            "--config",
            path,
            "--retention-days",
            "7",
            "--print-config",
        ],
        &[("IOTHUB_MAX_FIELDS", "20")],
    );
    assert!(ok, "{err}");
    assert!(
        shown.contains("bind: 127.0.0.1:4000"),
        "file over default: {shown}"
    );
    assert!(shown.contains("max_fields: 20"), "environment over file");
    assert!(shown.contains("retention_days: 7"), "flag over file");
    assert!(
        shown.contains("flush_rows: 100000"),
        "default where nothing says otherwise"
    );
    assert!(shown.contains("allow_tokenless_devices: true"));
    assert!(shown.contains("\"heading\""));
    assert!(
        !shown.contains("pw-secret-xyz") && !shown.contains("db-secret-xyz"),
        "{shown}"
    );
    assert!(shown.contains("***"));
    // IOTHUB_CONFIG works as well as the flag.
    let (ok, shown, _) = iothub(&["--print-config"], &[("IOTHUB_CONFIG", path)]);
    assert!(ok && shown.contains("bind: 127.0.0.1:4000"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "max-fields = 5000\n").unwrap();
    let (ok, _, err) = iothub(&["serve", "--config", bad.to_str().unwrap()], &[]);
    assert!(!ok);
    assert!(
        err.contains("\"max-fields\"") && err.contains("1..=1024"),
        "{err}"
    );
    std::fs::write(&bad, "colour = \"blue\"\n").unwrap();
    let (ok, _, err) = iothub(&["serve", "--config", bad.to_str().unwrap()], &[]);
    assert!(
        !ok && err.contains("unknown key \"colour\"") && err.contains("max-fields"),
        "{err}"
    );
    std::fs::write(&bad, "behind-proxy = \"maybe\"\n").unwrap();
    let (ok, _, err) = iothub(&["serve", "--config", bad.to_str().unwrap()], &[]);
    assert!(!ok && err.contains("not true or false"), "{err}");
}

#[tokio::test]
async fn the_first_password_can_come_from_a_credential_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin-password");
    std::fs::write(&file, "from a credential file\n").unwrap();
    let hub = HubProcess::start_with(&["--admin-password-file", file.to_str().unwrap()]).await;
    assert!(sign_in(hub.addr, "admin", "from a credential file")
        .await
        .is_ok());
    // Both ways at once is a mistake, said so.
    let (ok, _, err) = iothub(
        &[
            "serve",
            "--admin-password",
            "x",
            "--admin-password-file",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!ok && err.contains("--admin-password-file"), "{err}");
}

#[tokio::test]
async fn the_command_line_removes_a_device_and_a_running_hub_follows() {
    let app = TestApp::spawn().await;
    let mut device = app.device("?id=porch").await;
    device.send("temp=4").await;
    eventually("the reading stored", || async {
        (!app.history("porch", 10).await.is_empty()).then_some(())
    })
    .await;
    let data_dir = app.data_dir.path().to_str().unwrap().to_string();
    let (ok, out, err) = iothub(
        &[
            "device",
            "remove",
            "porch",
            "--keep-readings",
            "--data-dir",
            &data_dir,
        ],
        &[],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("removed device porch; its readings are kept"),
        "{out}"
    );
    // The running hub drops it from the dashboard within seconds (as it does revoked tokens).
    eventually("the device unlisted", || async {
        app.device_summary("porch").await.is_none().then_some(())
    })
    .await;
    assert_eq!(device.closed().await, "device removed");
    let (ok, _, err) = iothub(&["device", "remove", "porch", "--data-dir", &data_dir], &[]);
    assert!(!ok && err.contains("there is no device \"porch\""), "{err}");
    app.stop().await;
}

#[tokio::test]
async fn alarm_rules_come_from_the_config_file_and_a_bad_one_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        r#"
max-fields = 32

[[alarm_rule]]
name = "kitchen too hot"
devices = "kitchen-*"
condition = { kind = "above", field = "temp", threshold = 30.0, clear = 28.0, hold_s = 60 }
ntfy_url = "https://ntfy.example.org/hub"
on_raised = { target = "alarm_device", variable = "FAN", value = 1.0 }

[[alarm_rule]]
name = "garage gone quiet"
devices = "garage"
condition = { kind = "offline", after_s = 300 }
"#,
    )
    .unwrap();
    let hub = HubProcess::start(&["--config", file.to_str().unwrap()]).await;
    let cookie = sign_in(hub.addr, "admin", crate::helpers::ADMIN_PASSWORD)
        .await
        .unwrap();
    let rules: Vec<app::model::AlarmRule> = reqwest::Client::new()
        .post(format!(
            "http://{}{}",
            hub.addr,
            app::api::ListAlarmRules::PATH
        ))
        .header(reqwest::header::COOKIE, cookie)
        .header(reqwest::header::ORIGIN, format!("http://{}", hub.addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["kitchen too hot", "garage gone quiet"]);
    assert_eq!(rules[0].on_raised.as_ref().unwrap().variable, "FAN");

    // A rule the dashboard would refuse stops the start, saying which and why.
    let bad = dir.path().join("bad.toml");
    for (condition, why) in [
        (
            r#"{ kind = "above", field = "temp", threshold = 30.0, clear = 31.0 }"#,
            "clears at or below",
        ),
        (r#"{ kind = "hot" }"#, "hot"),
    ] {
        let rule =
            format!("[[alarm_rule]]\nname = \"x\"\ndevices = \"*\"\ncondition = {condition}\n");
        std::fs::write(&bad, rule).unwrap();
        let (ok, _, err) = iothub(&["serve", "--config", bad.to_str().unwrap()], &[]);
        assert!(
            !ok && err.contains("alarm_rule[0]") && err.contains(why),
            "{err}"
        );
    }
}
